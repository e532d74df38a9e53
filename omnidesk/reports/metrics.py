"""The parity figures per channel, read from the database: a PostgreSQL path and a portable one.

Both return the same `Raw` figures for the same data (tests/reports/test_report.py runs both on
the same PostgreSQL data). Definitions: docs/reports.md. Both read ticket rows only: what lives in
the messages is stored on the ticket as it happens (omnidesk/reports/facts.py).

- PostgreSQL: one statement of hash aggregates (counts with FILTER under GROUPING SETS, channel and
  pooled; a count/min/max histogram of every time sample), then exact percentiles from the
  histogram, reading back only a few buckets (omnidesk/reports/buckets.py): no million-row sort.
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
    "next_response_samples", "ingest_lag_samples",
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


def _ticket_add(out, values, ch, cfm, fra, frb, solved, fr_met, res_met, reopens, handoff, public, nxt, lags) -> None:  # type: ignore[no-untyped-def]
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
    for kind, lag in lags.items():
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
# One statement: a hash aggregate of the counts per channel and pooled, and a histogram
# (count, min, max per bucket) of every time sample; percentiles come exactly from the histogram
# (omnidesk/reports/buckets.py), reading back only the few buckets where an order statistic is
# neither its bucket's first nor last value. Nothing sorts the million rows.

#: hash tables of the report's aggregates stay in memory (the default 4 MB spills to disk)
WORK_MEM = "256MB"
#: bucket width (s) for ingest lag, a few seconds typically (time metrics use the rank test's width)
LAG_BUCKET_S = 0.1
_T = Ticket._meta.db_table
_E = TicketEvent._meta.db_table
_A = Ticket._meta.get_field("origin_account").related_model._meta.db_table  # type: ignore[union-attr]
_ACTIONS = ", ".join(f"'{a}'" for a in TRANSFER_ACTIONS)


def _scope_sql(scope: Scope, *, counts: bool = True) -> tuple[str, list[object]]:
    """The tickets in scope as rows t: the time samples, and with `counts` what the counts need."""
    counted = """t.first_response_at IS NOT NULL AS answered, t.first_response_met AS fr_met,
               t.resolution_met AS res_met, t.reopen_count > 0 AS reopened, t.first_message_public AS pub,
               t.handoff_at IS NOT NULL AS handed, coalesce(tr.n, 0) AS transfers,"""
    transfers = f"""LEFT JOIN (
          SELECT ticket_id, count(*) AS n FROM {_E}
          WHERE action IN ({_ACTIONS}) AND old IS NOT NULL AND new IS NOT NULL GROUP BY ticket_id
        ) tr ON tr.ticket_id = t.id"""
    sql = f"""
        SELECT a.kind AS channel, {counted if counts else ""}
               extract(epoch FROM (t.first_response_at - t.customer_first_message_at))::float8 AS fr,
               t.first_response_business_s AS frb,
               extract(epoch FROM (t.solved_at - t.customer_first_message_at))::float8 AS res,
               t.next_response_samples AS nxt, t.ingest_lag_samples AS lags
        FROM {_T} t JOIN {_A} a ON a.id = t.origin_account_id {transfers if counts else ""}
        WHERE t.customer_first_message_at >= %s AND t.customer_first_message_at < %s"""
    params: list[object] = [scope.since, scope.until]
    if scope.group_ids is not None:
        sql += " AND t.group_id = ANY(%s)"
        params.append(sorted(scope.group_ids))
    return sql, params


def _elements(array: str) -> str:
    """(channel, v) for each number of the JSON array `array` of each row of t: the first two by
    subscript (most tickets have one or two), a set-returning function only for longer arrays."""
    return f"""SELECT channel, ({array} ->> 0)::float8 AS v FROM t WHERE ({array} ->> 0) IS NOT NULL
        UNION ALL SELECT channel, ({array} ->> 1)::float8 FROM t WHERE ({array} ->> 1) IS NOT NULL
        UNION ALL SELECT channel, e.v::float8 FROM t CROSS JOIN LATERAL jsonb_array_elements_text({array}) WITH ORDINALITY e(v, i)
          WHERE jsonb_array_length({array}) > 2 AND e.i > 2"""


#: each time sample of a metric as (channel, v) from the scoped ticket rows t
_SAMPLES = {
    "first_response": "SELECT channel, fr AS v FROM t WHERE fr IS NOT NULL",
    "first_response_business": "SELECT channel, frb AS v FROM t WHERE frb IS NOT NULL",
    "resolution": "SELECT channel, res AS v FROM t WHERE res IS NOT NULL",
    "next_response": _elements("t.nxt"),
    # the ticket's own channel, then (rarely any) messages that came in on another channel's account
    "ingest_lag": _elements("(t.lags -> t.channel)") + """
        UNION ALL
        SELECT kv.key, e::float8 FROM t CROSS JOIN LATERAL jsonb_each(t.lags - t.channel) kv
          CROSS JOIN LATERAL jsonb_array_elements_text(kv.value) e
        WHERE t.lags - t.channel <> '{}'::jsonb""",
}


def _bucket_sql(metric: str, resolution_s: int) -> str:
    width = LAG_BUCKET_S if metric == "ingest_lag" else float(resolution_s)
    return f"floor(v / {width!r}::float8)::bigint"


def _postgres(scope: Scope, resolution_s: int) -> dict[str, Raw]:
    out: dict[str, Raw] = defaultdict(Raw)
    with connection.cursor() as cur:
        # hash aggregates in memory; no JIT (compiling costs seconds, the plans are simple)
        cur.execute("SET work_mem = %s", [WORK_MEM])
        cur.execute("SET jit = off")
        try:
            hists = _pg_counts_and_histograms(cur, out, scope, resolution_s)
            _pg_percentiles(cur, out, scope, resolution_s, hists)
        finally:
            cur.execute("RESET work_mem")
            cur.execute("RESET jit")
    for (ch, metric), hist in hists.items():
        if metric in RANKED:
            out[ch].hist[metric] = {b: bucket.n for b, bucket in hist.items()}
    return dict(out)


def _pg_counts_and_histograms(cur, out, scope, resolution_s) -> dict[tuple[str, str], dict[int, Bucket]]:  # type: ignore[no-untyped-def]
    scope_sql, params = _scope_sql(scope)
    histograms = " UNION ALL ".join(
        f"SELECT channel, 0, '{metric}', ARRAY[{_bucket_sql(metric, resolution_s)}, count(*)], min(v), max(v) "
        f"FROM ({sql}) x GROUP BY channel, {_bucket_sql(metric, resolution_s)}"
        for metric, sql in _SAMPLES.items()
    )
    cur.execute(
        f"""
        WITH t AS MATERIALIZED ({scope_sql})
        SELECT channel, GROUPING(channel), NULL, ARRAY[
                 count(*), count(*) FILTER (WHERE answered), count(*) FILTER (WHERE fr_met), count(fr_met),
                 count(*) FILTER (WHERE res_met), count(res_met), count(*) FILTER (WHERE reopened),
                 sum(transfers)::bigint, count(*) FILTER (WHERE pub), count(*) FILTER (WHERE pub AND handed)],
               NULL::float8, NULL::float8
        FROM t GROUP BY GROUPING SETS ((channel), ())
        UNION ALL {histograms}
        """,
        params,
    )
    hists: dict[tuple[str, str], dict[int, Bucket]] = defaultdict(dict)
    for ch, grouped, metric, numbers, lo, hi in cur.fetchall():
        if metric is None:
            raw = out[POOLED if grouped else ch]
            (raw.volume, raw.answered, raw.fr_met, raw.fr_decided, raw.res_met, raw.res_decided, raw.reopened,
             raw.transfers, raw.public_first, raw.handed_off) = numbers
        else:
            hists[ch, metric][numbers[0]] = Bucket(numbers[1], lo, hi)
    return hists


def _pg_percentiles(cur, out, scope, resolution_s, hists) -> None:  # type: ignore[no-untyped-def]
    plans = {key: plan_make(hist, QUANTILES[key[1]]) for key, hist in hists.items()}
    for metric in QUANTILES:
        pooled = merged(h for (_, m), h in hists.items() if m == metric)
        plans[POOLED, metric] = plan_make(pooled, QUANTILES[metric])
    needs: dict[str, set[int]] = defaultdict(set)
    for (_, metric), plan in plans.items():
        needs[metric] |= plan_needs(plan)
    values: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    if any(needs.values()):
        scope_sql, params = _scope_sql(scope, counts=False)
        wanted = [(m, sorted(b)) for m, b in sorted(needs.items()) if b]
        reads = " UNION ALL ".join(
            f"SELECT channel, '{metric}', {_bucket_sql(metric, resolution_s)}, v FROM ({_SAMPLES[metric]}) x "
            f"WHERE {_bucket_sql(metric, resolution_s)} = ANY(%s)"
            for metric, _ in wanted
        )
        cur.execute(f"WITH t AS MATERIALIZED ({scope_sql}) {reads}", [*params, *(b for _, b in wanted)])
        for ch, metric, b, v in cur.fetchall():
            values[ch, metric][b].append(v)
            values[POOLED, metric][b].append(v)
        for by_bucket in values.values():
            for vals in by_bucket.values():
                vals.sort()
    for (ch, metric), plan in plans.items():
        pct = plan_finish(plan, values[ch, metric]) if plan.n else {}
        out[ch].pct[metric] = {qname(q): pct.get(q) for q in QUANTILES[metric]}
        out[ch].n[metric] = plan.n
