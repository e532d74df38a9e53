"""The parity figures per channel, read from the database: a PostgreSQL path and a portable one.

Both return the same `Raw` figures for the same data (tests/reports/test_report.py runs both on
the same PostgreSQL data). Definitions: docs/reports.md. Both read ticket rows only: what lives in
the messages is stored on the ticket as it happens (omnidesk/reports/facts.py).

- PostgreSQL: one statement of hash aggregates, each part one scan of the tickets in scope (counts
  with FILTER per origin account; a count/min/max histogram of every time sample), then exact
  percentiles from the histograms, reading back only a few buckets (omnidesk/reports/buckets.py):
  no million-row sort.
- Portable (SQLite has no percentile_cont): the ticket rows read through the ORM, the same
  definitions applied in Python with stats.percentile (percentile_cont semantics).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection
from django.db.models import QuerySet

from omnidesk.tickets.models import Ticket, TicketEvent

from .buckets import Bucket, merged, plan_finish, plan_make, plan_needs
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
# One statement of hash aggregates straight over the ticket rows in scope, each part its own scan
# (PostgreSQL may run each in parallel): the counts per origin account, the transfers, and a
# histogram (count, min, max per bucket) of every time sample. Accounts are mapped to channels here,
# which spares joining the accounts to every row. Percentiles come exactly from the histograms
# (omnidesk/reports/buckets.py); one statement per metric then reads back only the few buckets
# where an order statistic is neither its bucket's first nor last value. Nothing sorts the million
# rows, and nothing is materialised: writing the scope rows to a CTE cost more than scanning them
# again, and one scan unnesting every metric at once cost more than one scan per metric.
#
# Times between two timestamps: the exact value (extract(epoch) is numeric, as Python's
# total_seconds) is costly per row, so rows are bucketed by date_part's float8, which can be one
# unit in the last place off but never across a bucket edge (values are whole microseconds, far
# from the edge unless on it, and then exact), and only the min/max of each bucket and the values
# read back are converted exactly.

#: hash tables of the report's aggregates stay in memory (the default 4 MB spills to disk)
WORK_MEM = "256MB"
#: bucket width (s) for ingest lag, a few seconds typically (time metrics use the rank test's width)
LAG_BUCKET_S = 0.1
_T = Ticket._meta.db_table
_E = TicketEvent._meta.db_table
_A = Ticket._meta.get_field("origin_account").related_model  # type: ignore[union-attr]
_ACTIONS = ", ".join(f"'{a}'" for a in TRANSFER_ACTIONS)
#: time metrics between two ticket timestamps: the later column (the earlier is always customer_first_message_at)
_SPANS = {"first_response": "first_response_at", "resolution": "solved_at"}
#: time metrics stored as seconds: their samples as (account, v) from the ticket rows t in scope
#: (unnest in the select list: a LATERAL function scan costs three times as much per row)
_STORED = {
    "first_response_business": f"SELECT t.origin_account_id AS account, t.first_response_business_s AS v FROM {_T} t"
                               " WHERE {scope} AND t.first_response_business_s IS NOT NULL",
    "next_response": f"SELECT t.origin_account_id AS account, unnest(t.next_response_samples) AS v FROM {_T} t WHERE {{scope}}",
    "ingest_lag": f"SELECT t.origin_account_id AS account, unnest(t.ingest_lag_samples) AS v FROM {_T} t WHERE {{scope}}",
}
#: ingest lags of messages that came in on another channel (rare; partial index ticket_lag_elsewhere): (kind, v)
_ELSEWHERE = f"""SELECT kv.key AS kind, e::float8 AS v FROM {_T} t
    CROSS JOIN LATERAL jsonb_each(t.ingest_lag_elsewhere) kv CROSS JOIN LATERAL jsonb_array_elements_text(kv.value) e
    WHERE {{scope}} AND NOT (t.ingest_lag_elsewhere = '{{{{}}}}'::jsonb)"""


def _scope_where(scope: Scope) -> tuple[str, list[object]]:
    """The condition on ticket rows t for being in scope."""
    sql = "t.customer_first_message_at >= %s AND t.customer_first_message_at < %s"
    params: list[object] = [scope.since, scope.until]
    if scope.group_ids is not None:
        sql += " AND t.group_id = ANY(%s)"
        params.append(sorted(scope.group_ids))
    return sql, params


def _width(metric: str, resolution_s: int) -> str:
    return f"{LAG_BUCKET_S if metric == 'ingest_lag' else float(resolution_s)!r}::float8"


def _span(metric: str) -> str:
    return f"(t.{_SPANS[metric]} - t.customer_first_message_at)"


def _span_bucket(metric: str, resolution_s: int) -> str:
    return f"floor(date_part('epoch', {_span(metric)}) / {_width(metric, resolution_s)})::bigint"


def _histograms(scope: Scope, resolution_s: int) -> tuple[list[str], list[object]]:
    """One SELECT per metric: (account, kind, metric, [bucket, count], min, max)."""
    where, params = _scope_where(scope)
    parts = []
    for metric in _SPANS:
        span, bucket = _span(metric), _span_bucket(metric, resolution_s)
        parts.append(
            f"SELECT account, NULL, '{metric}', ARRAY[b, n], extract(epoch FROM lo)::float8, extract(epoch FROM hi)::float8 "
            f"FROM (SELECT t.origin_account_id AS account, {bucket} AS b, count(*) AS n, min({span}) AS lo, max({span}) AS hi "
            f"FROM {_T} t WHERE {where} AND t.{_SPANS[metric]} IS NOT NULL GROUP BY 1, 2) h"
        )
    for metric, samples in _STORED.items():
        bucket = f"floor(v / {_width(metric, resolution_s)})::bigint"
        parts.append(
            f"SELECT account, NULL, '{metric}', ARRAY[{bucket}, count(*)], min(v), max(v) "
            f"FROM ({samples.format(scope=where)}) s GROUP BY 1, {bucket}"
        )
    bucket = f"floor(v / {_width('ingest_lag', resolution_s)})::bigint"
    parts.append(
        f"SELECT NULL, kind, 'ingest_lag', ARRAY[{bucket}, count(*)], min(v), max(v) "
        f"FROM ({_ELSEWHERE.format(scope=where)}) s GROUP BY 2, {bucket}"
    )
    return parts, params * len(parts)


def _postgres(scope: Scope, resolution_s: int) -> dict[str, Raw]:
    kinds = dict(_A.objects.values_list("pk", "kind"))
    out: dict[str, Raw] = defaultdict(Raw)
    with connection.cursor() as cur:
        # hash aggregates in memory; no JIT (compiling costs seconds, the plans are simple)
        cur.execute("SET work_mem = %s", [WORK_MEM])
        cur.execute("SET jit = off")
        try:
            hists = _pg_counts_and_histograms(cur, out, kinds, scope, resolution_s)
            _pg_percentiles(cur, out, kinds, scope, resolution_s, hists)
        finally:
            cur.execute("RESET work_mem")
            cur.execute("RESET jit")
    for (ch, metric), hist in hists.items():
        if metric in RANKED:
            out[ch].hist[metric] = {b: bucket.n for b, bucket in hist.items()}
    return dict(out)


def _pg_counts_and_histograms(cur, out, kinds, scope, resolution_s) -> dict[tuple[str, str], dict[int, Bucket]]:  # type: ignore[no-untyped-def]
    where, params = _scope_where(scope)
    histograms, hist_params = _histograms(scope, resolution_s)
    cur.execute(
        " UNION ALL ".join([
            f"""SELECT t.origin_account_id, NULL, NULL, ARRAY[
                   count(*), count(*) FILTER (WHERE t.first_response_at IS NOT NULL),
                   count(*) FILTER (WHERE t.first_response_met), count(t.first_response_met),
                   count(*) FILTER (WHERE t.resolution_met), count(t.resolution_met),
                   count(*) FILTER (WHERE t.reopen_count > 0), count(*) FILTER (WHERE t.first_message_public),
                   count(*) FILTER (WHERE t.first_message_public AND t.handoff_at IS NOT NULL)], NULL::float8, NULL::float8
            FROM {_T} t WHERE {where} GROUP BY 1""",
            f"""SELECT t.origin_account_id, NULL, 'transfers', ARRAY[count(*)], NULL, NULL
            FROM {_E} e JOIN {_T} t ON t.id = e.ticket_id
            WHERE {where} AND e.action IN ({_ACTIONS}) AND e.old IS NOT NULL AND e.new IS NOT NULL
            GROUP BY 1""",
            *histograms,
        ]),
        [*params, *params, *hist_params],
    )
    hists: dict[tuple[str, str], dict[int, Bucket]] = defaultdict(dict)
    for account, kind, metric, numbers, lo, hi in cur.fetchall():
        ch = kind or kinds[account]
        if metric is None:
            for raw in (out[ch], out[POOLED]):
                raw.volume += numbers[0]
                raw.answered += numbers[1]
                raw.fr_met += numbers[2]
                raw.fr_decided += numbers[3]
                raw.res_met += numbers[4]
                raw.res_decided += numbers[5]
                raw.reopened += numbers[6]
                raw.public_first += numbers[7]
                raw.handed_off += numbers[8]
        elif metric == "transfers":
            out[ch].transfers += numbers[0]
            out[POOLED].transfers += numbers[0]
        else:
            hist, (b, n) = hists[ch, metric], numbers
            if b in hist:  # two accounts of one channel
                hist[b].merge(Bucket(n, lo, hi))
            else:
                hist[b] = Bucket(n, lo, hi)
    return hists


def _readback(metric: str, buckets: list[int], scope: Scope, resolution_s: int) -> tuple[str, list[object]]:
    """(account, kind, bucket, v) for the samples of `metric` in `buckets`."""
    where, params = _scope_where(scope)
    if metric in _SPANS:
        bucket = _span_bucket(metric, resolution_s)
        sql = (f"SELECT t.origin_account_id, NULL, {bucket}, extract(epoch FROM {_span(metric)})::float8 "
               f"FROM {_T} t WHERE {where} AND t.{_SPANS[metric]} IS NOT NULL AND {bucket} = ANY(%s)")
        return sql, [*params, buckets]
    bucket = f"floor(v / {_width(metric, resolution_s)})::bigint"
    sql = f"SELECT account, NULL, {bucket}, v FROM ({_STORED[metric].format(scope=where)}) s WHERE {bucket} = ANY(%s)"
    args = [*params, buckets]
    if metric == "ingest_lag":
        sql += f" UNION ALL SELECT NULL, kind, {bucket}, v FROM ({_ELSEWHERE.format(scope=where)}) s WHERE {bucket} = ANY(%s)"
        args += [*params, buckets]
    return sql, args


def _pg_percentiles(cur, out, kinds, scope, resolution_s, hists) -> None:  # type: ignore[no-untyped-def]
    plans = {key: plan_make(hist, QUANTILES[key[1]]) for key, hist in hists.items()}
    for metric in QUANTILES:
        pooled = merged(h for (_, m), h in hists.items() if m == metric)
        plans[POOLED, metric] = plan_make(pooled, QUANTILES[metric])
    needs: dict[str, set[int]] = defaultdict(set)
    for (_, metric), plan in plans.items():
        needs[metric] |= plan_needs(plan)
    values: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for metric, buckets in sorted(needs.items()):
        if not buckets:
            continue
        cur.execute(*_readback(metric, sorted(buckets), scope, resolution_s))
        for account, kind, b, v in cur.fetchall():
            values[kind or kinds[account], metric][b].append(v)
            values[POOLED, metric][b].append(v)
    for by_bucket in values.values():
        for vals in by_bucket.values():
            vals.sort()
    for (ch, metric), plan in plans.items():
        pct = plan_finish(plan, values[ch, metric]) if plan.n else {}
        out[ch].pct[metric] = {qname(q): pct.get(q) for q in QUANTILES[metric]}
        out[ch].n[metric] = plan.n
