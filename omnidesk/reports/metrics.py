"""The parity figures per channel, read from the database: a PostgreSQL path and a portable one.

Both return the same `Raw` figures for the same data (tests/reports/test_report.py runs both on
the same PostgreSQL data). Definitions: docs/reports.md. Both read ticket rows only: what lives in
the messages is stored on the ticket as it happens (omnidesk/reports/facts.py).

- PostgreSQL: one statement, one scan of the tickets in scope (split into ranges of pages that
  parallel workers share): counts with FILTER per origin account, and every time sample sent back
  as one bytea of binary values per account; exact percentiles and histograms computed from those
  in numpy (omnidesk/reports/samples.py).
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

from omnidesk.tickets.models import Ticket

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
    "transfer_count", "next_response_samples", "ingest_lag_samples", "ingest_lag_elsewhere",
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

    pooled_values: dict[str, list[float]] = defaultdict(list)
    for ch, metrics in values.items():
        for metric, vals in metrics.items():
            _summarise(out[ch], metric, vals, resolution_s)
            pooled_values[metric] += vals
    for metric, vals in pooled_values.items():
        _summarise(out[POOLED], metric, vals, 0)
    return dict(out)


def _ticket_add(out, values, ch, cfm, fra, frb, solved, fr_met, res_met, reopens, handoff, public, transfers, nxt, lags, elsewhere) -> None:  # type: ignore[no-untyped-def]
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
        r.transfers += transfers
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
# One scan of the tickets in scope, hash-aggregated per origin account (mapped to channels here,
# which spares joining the accounts to every row): the counts (FILTER), the transfers (counted on
# the ticket as they are recorded), and each metric's samples sent back whole as one bytea of binary
# values per account, from which numpy computes the exact percentiles and the histograms
# (omnidesk/reports/samples.py): the database neither sorts nor buckets the samples. A time between
# two timestamps is sent as their interval (exact microseconds); the stored sample lists are already
# float8send's bytes back to back (omnidesk/reports/fields.py), so they are only concatenated.
# The scan is split into ranges of the table's pages (TID range scans) run by PostgreSQL's Parallel
# Append in its workers: string_agg has no combine function before PostgreSQL 16, so an ordinary
# parallel scan could not aggregate in parallel.

#: the aggregates hold every sample in scope (8 bytes each, 16 per interval); the default 4 MB would spill
WORK_MEM = "256MB"
_T = Ticket._meta.db_table
_A = Ticket._meta.get_field("origin_account").related_model  # type: ignore[union-attr]
#: the counts' array, in Raw's order
_COUNTS = ("volume", "answered", "fr_met", "fr_decided", "res_met", "res_decided", "reopened", "public_first",
           "handed_off", "transfers")
#: the bytea columns' metrics, after the counts
_COLUMNS_PG = ("first_response", "resolution", "first_response_business", "next_response", "ingest_lag")
#: metrics whose samples are the interval between two ticket timestamps
_SPANS = ("first_response", "resolution")
_PART = f"""SELECT t.origin_account_id, ARRAY[
        count(*), count(*) FILTER (WHERE t.first_response_at IS NOT NULL),
        count(*) FILTER (WHERE t.first_response_met), count(t.first_response_met),
        count(*) FILTER (WHERE t.resolution_met), count(t.resolution_met),
        count(*) FILTER (WHERE t.reopen_count > 0), count(*) FILTER (WHERE t.first_message_public),
        count(*) FILTER (WHERE t.first_message_public AND t.handoff_at IS NOT NULL), sum(t.transfer_count)],
    string_agg(interval_send(t.first_response_at - t.customer_first_message_at), ''::bytea),
    string_agg(interval_send(t.solved_at - t.customer_first_message_at), ''::bytea),
    string_agg(float8send(t.first_response_business_s), ''::bytea),
    string_agg(t.next_response_samples, ''::bytea), string_agg(t.ingest_lag_samples, ''::bytea)
    FROM {_T} t WHERE {{where}} GROUP BY 1"""


def _scope_where(scope: Scope) -> tuple[str, list[object]]:
    """The condition on ticket rows t for being in scope."""
    sql = "t.customer_first_message_at >= %s AND t.customer_first_message_at < %s"
    params: list[object] = [scope.since, scope.until]
    if scope.group_ids is not None:
        sql += " AND t.group_id = ANY(%s)"
        params.append(sorted(scope.group_ids))
    return sql, params


def _page_ranges(cur) -> list[str]:  # type: ignore[no-untyped-def]
    """Conditions on t.ctid splitting the tickets into a range of pages per process a parallel query may use.

    One range for a table under min_parallel_table_scan_size, where no worker would start. The outer
    two are open-ended, so rows on pages added since the size was read are still counted, once.
    """
    cur.execute(
        "SELECT pg_relation_size(%s::regclass), current_setting('block_size')::int,"
        " current_setting('max_parallel_workers_per_gather')::int + 1,"
        " pg_size_bytes(current_setting('min_parallel_table_scan_size'))",
        [_T],
    )
    size, page, processes, parallel_from = cur.fetchone()
    parts = processes if size >= parallel_from else 1
    bounds = [f"'({size // page * i // parts},0)'::tid" for i in range(1, parts)]
    lower = ["TRUE", *(f"t.ctid >= {b}" for b in bounds)]
    upper = [*(f"t.ctid < {b}" for b in bounds), "TRUE"]
    return [f"{lo} AND {hi}" for lo, hi in zip(lower, upper, strict=True)]


def _statement(cur, scope: Scope) -> tuple[str, list[object]]:  # type: ignore[no-untyped-def]
    """The report's one statement: a part per range of pages."""
    where, params = _scope_where(scope)
    parts = [_PART.format(where=f"{where} AND {r}") for r in _page_ranges(cur)]
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
    for account, counts, *columns in rows:
        ch = kinds[account]
        for raw in (out[ch], out[POOLED]):
            for name, n in zip(_COUNTS, counts, strict=True):
                setattr(raw, name, getattr(raw, name) + n)
        for metric, data in zip(_COLUMNS_PG, columns, strict=True):
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
