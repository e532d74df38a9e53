"""The parity figures per channel, read from the database: a PostgreSQL path and a portable one.

Both return the same `Raw` figures for the same data (tests/reports/test_report.py runs both on
the same PostgreSQL data). Definitions: docs/reports.md. Both read ticket rows only: what lives in
the messages is stored on the ticket as it happens (omnidesk/reports/facts.py).

- PostgreSQL: one statement, one scan of the tickets in scope per part (split into ranges of pages
  that parallel workers share): counts with FILTER per origin account, and every time sample sent
  back as one bytea of binary values per account; exact percentiles and histograms computed from
  those in numpy (omnidesk/reports/samples.py).
- Portable (SQLite has no percentile_cont): the ticket rows read through the ORM, the same
  definitions applied in Python with stats.percentile (percentile_cont semantics).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import psycopg
from django.db import connection
from django.db.models import Q, QuerySet

from omnidesk.tickets.models import Ticket, TicketEvent

from .samples import (
    Seconds,
    histogram,
    percentiles,
    seconds_from_floats,
    seconds_from_intervals,
)
from .stats import merge_counts, percentile

POOLED = "all"

#: time metrics and the percentiles reported for each
QUANTILES: dict[str, tuple[float, ...]] = {
    "first_response": (0.5, 0.9, 0.99),
    "first_response_business": (0.5, 0.9, 0.99),
    "next_response": (0.5, 0.9),
    "resolution": (0.5, 0.9),
    "ingest_lag": (0.5, 0.99),
}
#: time metrics compared between channels with a rank test, on buckets of this many seconds
RANKED = ("first_response", "first_response_business", "next_response", "resolution")
TRANSFER_ACTIONS = ("assignee_changed", "group_changed")


def qname(q: float) -> str:
    return f"p{round(q * 100)}"


@dataclass(frozen=True)
class Scope:
    """Tickets whose customer_first_message_at is in [since, until), optionally within groups."""

    since: datetime
    until: datetime
    #: None = every ticket (managers); otherwise only tickets of these groups
    group_ids: frozenset[int] | None = None


@dataclass
class Raw:
    """Counts, percentiles and rank-test histograms of one channel (or the pool)."""

    volume: int = 0
    answered: int = 0
    fr_met: int = 0
    fr_decided: int = 0
    res_met: int = 0
    res_decided: int = 0
    reopened: int = 0
    transfers: int = 0
    public_first: int = 0
    handed_off: int = 0
    #: metric -> {"p50": seconds, ...}
    pct: dict[str, dict[str, float | None]] = field(default_factory=dict)
    #: metric -> sample size behind its percentiles
    n: dict[str, int] = field(default_factory=dict)
    #: metric -> {bucket: count}, bucket = floor(seconds / resolution)
    hist: dict[str, dict[int, int]] = field(default_factory=dict)

    def fill_missing(self) -> None:
        for metric, qs in QUANTILES.items():
            self.pct.setdefault(metric, {qname(q): None for q in qs})
            self.n.setdefault(metric, 0)
        for metric in RANKED:
            self.hist.setdefault(metric, {})


def scoped_tickets(*, scope: Scope) -> QuerySet[Ticket]:
    qs = Ticket.objects.filter(customer_first_message_at__gte=scope.since, customer_first_message_at__lt=scope.until)
    if scope.group_ids is not None:
        qs = qs.filter(group_id__in=scope.group_ids)
    return qs


def figures_compute(*, scope: Scope, resolution_s: int = 60, portable: bool | None = None) -> dict[str, Raw]:
    """{channel kind: Raw, ..., POOLED: Raw}; the PostgreSQL path unless portable (or not on PostgreSQL)."""
    if portable is None:
        portable = connection.vendor != "postgresql"
    out = _portable(scope, resolution_s) if portable else _postgres(scope, resolution_s)
    pooled = out.setdefault(POOLED, Raw())
    for metric in RANKED:
        pooled.hist[metric] = merge_counts(*(r.hist.get(metric, {}) for k, r in out.items() if k != POOLED))
    for raw in out.values():
        raw.fill_missing()
    return out


# --- portable -----------------------------------------------------------------------------------

#: the ticket columns both paths read: stored fields and facts (omnidesk/reports/facts.py), no messages
_COLUMNS = (
    "origin_account__kind", "customer_first_message_at", "first_response_at", "first_response_business_s",
    "solved_at", "first_response_met", "resolution_met", "reopen_count", "handoff_at", "first_message_public",
    "next_response_samples", "ingest_lag_samples", "ingest_lag_elsewhere",
)


def _bucket(seconds: float, resolution_s: int) -> int:
    return math.floor(seconds / resolution_s)


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def _portable(scope: Scope, resolution_s: int) -> dict[str, Raw]:
    out: dict[str, Raw] = defaultdict(Raw)
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    tickets = scoped_tickets(scope=scope)
    for row in tickets.values_list(*_COLUMNS).iterator(chunk_size=5000):
        _ticket_add(out, values, *row)
    transfers = (
        TicketEvent.objects.filter(ticket__in=tickets, action__in=TRANSFER_ACTIONS)
        .filter(old__isnull=False, new__isnull=False)
        .values_list("ticket__origin_account__kind", flat=True)
    )
    for ch in transfers.iterator(chunk_size=5000):
        out[ch].transfers += 1
        out[POOLED].transfers += 1

    pooled_values: dict[str, list[float]] = defaultdict(list)
    for ch, metrics in values.items():
        for metric, vals in metrics.items():
            _summarise(out[ch], metric, vals, resolution_s)
            pooled_values[metric] += vals
    for metric, vals in pooled_values.items():
        _summarise(out[POOLED], metric, vals, 0)
    return dict(out)


def _ticket_add(out, values, ch, cfm, fra, frb, solved, fr_met, res_met, reopens, handoff, public, nxt, lags, elsewhere) -> None:  # type: ignore[no-untyped-def]
    for key in (ch, POOLED):
        r = out[key]
        r.volume += 1
        r.answered += fra is not None
        r.fr_decided += fr_met is not None
        r.fr_met += fr_met is True
        r.res_decided += res_met is not None
        r.res_met += res_met is True
        r.reopened += reopens > 0
        r.public_first += public
        r.handed_off += public and handoff is not None
    if fra is not None:
        values[ch]["first_response"].append(_seconds(fra, cfm))
    if frb is not None:
        values[ch]["first_response_business"].append(frb)
    if solved is not None:
        values[ch]["resolution"].append(_seconds(solved, cfm))
    values[ch]["next_response"] += nxt
    values[ch]["ingest_lag"] += lags
    for kind, lag in elsewhere.items():
        values[kind]["ingest_lag"] += lag


def _summarise(raw: Raw, metric: str, vals: list[float], resolution_s: int) -> None:
    vals.sort()
    raw.pct[metric] = {qname(q): percentile(vals, q) for q in QUANTILES[metric]}
    raw.n[metric] = len(vals)
    if resolution_s and metric in RANKED:
        hist: dict[int, int] = {}
        for v in vals:
            b = _bucket(v, resolution_s)
            hist[b] = hist.get(b, 0) + 1
        raw.hist[metric] = hist


# --- PostgreSQL ---------------------------------------------------------------------------------
#
# Each channel's samples come back whole, one bytea of binary values per origin account and part
# (string_agg of float8send / interval_send), and numpy computes the exact percentiles and the
# histograms (omnidesk/reports/samples.py): the database neither sorts nor buckets the samples, and
# nothing is read back. The statement's parts, hash-aggregated per origin account (mapped to
# channels here, which spares joining the accounts to every row):
# - tickets: the counts (FILTER) and the first response, resolution and business first response
#   samples; a time between two timestamps is sent as their interval, exact microseconds;
# - samples: the stored next-response and ingest-lag lists, unnested side by side in the select
#   list (a LATERAL function scan costs three times as much per row); the shorter list of a ticket
#   is padded with NULLs, which string_agg skips;
# - transfers: the audit events counted per ticket, joined to the tickets in scope.
# The tickets and samples parts are each split into ranges of the table's pages (TID range scans)
# run by PostgreSQL's Parallel Append in its workers: string_agg has no combine function before
# PostgreSQL 16, so an ordinary parallel scan could not aggregate in parallel.

#: the aggregates hold every sample in scope (8 bytes each, 16 per interval); the default 4 MB would spill
WORK_MEM = "256MB"
#: below PostgreSQL's default min_parallel_table_scan_size (8 MB) no worker would start: one part
SPLIT_MIN_PAGES = 1024
_T = Ticket._meta.db_table
_E = TicketEvent._meta.db_table
_A = Ticket._meta.get_field("origin_account").related_model  # type: ignore[union-attr]
_ACTIONS = ", ".join(f"'{a}'" for a in TRANSFER_ACTIONS)
#: the counts part's array, in Raw's order
_COUNTS = ("volume", "answered", "fr_met", "fr_decided", "res_met", "res_decided", "reopened", "public_first",
           "handed_off")
#: (part, account, counts, three bytea columns); the columns' metrics per part:
_PARTS = {
    "tickets": ("first_response", "resolution", "first_response_business"),
    "samples": ("next_response", "ingest_lag", None),
    "transfers": (None, None, None),
}
#: metrics whose samples are the interval between two ticket timestamps
_SPANS = ("first_response", "resolution")
_TICKETS = f"""SELECT 'tickets', t.origin_account_id, ARRAY[
        count(*), count(*) FILTER (WHERE t.first_response_at IS NOT NULL),
        count(*) FILTER (WHERE t.first_response_met), count(t.first_response_met),
        count(*) FILTER (WHERE t.resolution_met), count(t.resolution_met),
        count(*) FILTER (WHERE t.reopen_count > 0), count(*) FILTER (WHERE t.first_message_public),
        count(*) FILTER (WHERE t.first_message_public AND t.handoff_at IS NOT NULL)],
    string_agg(interval_send(t.first_response_at - t.customer_first_message_at), ''::bytea),
    string_agg(interval_send(t.solved_at - t.customer_first_message_at), ''::bytea),
    string_agg(float8send(t.first_response_business_s), ''::bytea)
    FROM {_T} t WHERE {{where}} GROUP BY 2"""
_SAMPLES = f"""SELECT 'samples', account, NULL::bigint[],
    string_agg(float8send(nr), ''::bytea), string_agg(float8send(lag), ''::bytea), NULL::bytea
    FROM (SELECT t.origin_account_id AS account, unnest(t.next_response_samples) AS nr,
                 unnest(t.ingest_lag_samples) AS lag FROM {_T} t WHERE {{where}}) s GROUP BY 2"""
#: per ticket first: joined as one Parallel Append part, the plain join went through every ticket by an index
_TRANSFERS = f"""SELECT 'transfers', t.origin_account_id, ARRAY[sum(x.n)::bigint], NULL::bytea, NULL::bytea, NULL::bytea
    FROM (SELECT e.ticket_id, count(*) AS n FROM {_E} e
          WHERE e.action IN ({_ACTIONS}) AND e.old IS NOT NULL AND e.new IS NOT NULL GROUP BY 1) x
    JOIN {_T} t ON t.id = x.ticket_id WHERE {{where}} GROUP BY 2"""


def _scope_where(scope: Scope) -> tuple[str, list[object]]:
    """The condition on ticket rows t for being in scope."""
    sql = "t.customer_first_message_at >= %s AND t.customer_first_message_at < %s"
    params: list[object] = [scope.since, scope.until]
    if scope.group_ids is not None:
        sql += " AND t.group_id = ANY(%s)"
        params.append(sorted(scope.group_ids))
    return sql, params


def _page_ranges(cur) -> list[str]:  # type: ignore[no-untyped-def]
    """Conditions splitting the tickets into one range of pages per process a parallel query may use."""
    cur.execute(
        "SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::int,"
        " current_setting('max_parallel_workers_per_gather')::int",
        [_T],
    )
    pages, workers = cur.fetchone()
    return _split(0, pages, workers + 1 if pages >= SPLIT_MIN_PAGES else 1)


def _split(first: int, end: int, parts: int) -> list[str]:
    """Conditions on t.ctid cutting pages [first, end) into `parts` ranges, the outer two open-ended.

    Open-ended, rows on pages added since the size was read are still counted, once.
    """
    return _cut([first + (end - first) * i // parts for i in range(1, parts)])


def _cut(pages: list[int]) -> list[str]:
    """Conditions on t.ctid cutting the table before each of `pages` (ascending)."""
    bounds = [f"'({page},0)'::tid" for page in pages]
    lower = ["TRUE", *(f"t.ctid >= {b}" for b in bounds)]
    upper = [*(f"t.ctid < {b}" for b in bounds), "TRUE"]
    return [f"{lo} AND {hi}" for lo, hi in zip(lower, upper, strict=True)]


def _statement(cur, scope: Scope) -> tuple[str, list[object]]:  # type: ignore[no-untyped-def]
    """The report's one statement: the tickets and samples parts per range of pages, and the transfers."""
    where, params = _scope_where(scope)
    ranges = _page_ranges(cur)
    parts = [p.format(where=f"{where} AND {r}") for p in (_TICKETS, _SAMPLES) for r in ranges]
    parts.append(_TRANSFERS.format(where=where))
    return " UNION ALL ".join(parts), params * len(parts)


def _postgres(scope: Scope, resolution_s: int) -> dict[str, Raw]:
    kinds = dict(_A.objects.values_list("pk", "kind"))
    out: dict[str, Raw] = defaultdict(Raw)
    samples: dict[tuple[str, str], list[Seconds]] = defaultdict(list)
    connection.ensure_connection()
    # binary results: the samples arrive as bytes (Django's client-side cursors return text only)
    with psycopg.Cursor(connection.connection) as cur:
        # hash aggregates in memory; no JIT (compiling costs seconds, the plans are simple)
        cur.execute(f"SET work_mem = '{WORK_MEM}'")
        cur.execute("SET jit = off")
        try:
            cur.execute(*_statement(cur, scope), binary=True)
            rows = cur.fetchall()
        finally:
            cur.execute("RESET work_mem")
            cur.execute("RESET jit")
    for part, account, counts, *columns in rows:
        ch = kinds[account]
        for raw in (out[ch], out[POOLED]):
            if part == "tickets":
                for name, n in zip(_COUNTS, counts, strict=True):
                    setattr(raw, name, getattr(raw, name) + n)
            elif part == "transfers":
                raw.transfers += counts[0]
        for metric, data in zip(_PARTS[part], columns, strict=True):
            if metric is not None:
                decode = seconds_from_intervals if metric in _SPANS else seconds_from_floats
                samples[ch, metric].append(decode(data))
    for elsewhere in scoped_tickets(scope=scope).filter(~Q(ingest_lag_elsewhere={})).values_list(
        "ingest_lag_elsewhere", flat=True
    ):
        for kind, lags in elsewhere.items():
            samples[kind, "ingest_lag"].append(np.array(lags, dtype=np.float64))
    _pg_summarise(out, samples, resolution_s)
    return dict(out)


def _pg_summarise(out: dict[str, Raw], samples: dict[tuple[str, str], list[Seconds]], resolution_s: int) -> None:
    """Percentiles and sample sizes per channel and pooled, and the rank test's histograms per channel."""
    pooled: dict[str, list[Seconds]] = defaultdict(list)
    for (ch, metric), arrays in samples.items():
        values = np.concatenate(arrays)
        pooled[metric].append(values)
        _pg_metric(out[ch], metric, values)
        if metric in RANKED:
            out[ch].hist[metric] = histogram(values, resolution_s)
    for metric, arrays in pooled.items():
        _pg_metric(out[POOLED], metric, np.concatenate(arrays))


def _pg_metric(raw: Raw, metric: str, values: Seconds) -> None:
    raw.pct[metric] = {qname(q): v for q, v in percentiles(values, QUANTILES[metric]).items()}
    raw.n[metric] = len(values)
