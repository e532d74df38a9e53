"""The parity figures per channel, read from the database: a PostgreSQL path and a portable one.

Both return the same `Raw` figures for the same data (tests/reports/test_paths.py runs both on
the same PostgreSQL data). Definitions: docs/reports.md.

- PostgreSQL: aggregates with FILTER, percentile_cont under GROUPING SETS (channel and pooled in
  one pass), a window function pairing each customer message with the next agent message.
- Portable (SQLite has no percentile_cont): per-ticket rows read through the ORM, the same
  definitions applied in Python with stats.percentile (percentile_cont semantics).
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection
from django.db.models import Q, QuerySet

from omnidesk.tickets.models import Message, Ticket, TicketEvent

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


def _bucket(seconds: float, resolution_s: int) -> int:
    return math.floor(seconds / resolution_s)


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def _portable(scope: Scope, resolution_s: int) -> dict[str, Raw]:
    out: dict[str, Raw] = defaultdict(Raw)
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    tickets = scoped_tickets(scope=scope)
    rows = tickets.values_list(
        "id", "origin_account__kind", "customer_first_message_at", "first_response_at", "first_response_business_s",
        "solved_at", "first_response_met", "resolution_met", "reopen_count", "handoff_at",
    )
    info: dict[int, tuple[str, datetime, datetime | None]] = {}
    for tid, ch, cfm, fra, frb, solved, fr_met, res_met, reopens, handoff in rows.iterator(chunk_size=5000):
        info[tid] = (ch, cfm, fra)
        for key in (ch, POOLED):
            r = out[key]
            r.volume += 1
            r.answered += fra is not None
            r.fr_decided += fr_met is not None
            r.fr_met += fr_met is True
            r.res_decided += res_met is not None
            r.res_met += res_met is True
            r.reopened += reopens > 0
        if fra is not None:
            _add(values, ch, "first_response", _seconds(fra, cfm))
        if frb is not None:
            _add(values, ch, "first_response_business", frb)
        if solved is not None:
            _add(values, ch, "resolution", _seconds(solved, cfm))

    handoffs = dict(tickets.filter(handoff_at__isnull=False).values_list("id", "handoff_at"))
    transfers = (
        TicketEvent.objects.filter(ticket__in=tickets, action__in=TRANSFER_ACTIONS)
        .filter(old__isnull=False, new__isnull=False)
        .values_list("ticket__origin_account__kind", flat=True)
    )
    for ch in transfers.iterator(chunk_size=5000):
        out[ch].transfers += 1
        out[POOLED].transfers += 1

    messages = (
        Message.objects.filter(ticket__in=tickets, sent_at__isnull=False)
        .values_list("ticket_id", "direction", "kind", "automated", "visibility", "sent_at", "received_at", "account__kind")
        .order_by("ticket_id", "sent_at", "id")
    )
    current: int | None = None
    batch: list[tuple] = []  # type: ignore[type-arg]
    for row in messages.iterator(chunk_size=5000):
        if row[0] != current and batch:
            _ticket_messages(out, values, info[current], batch, current in handoffs)  # type: ignore[index]
            batch = []
        current = row[0]
        batch.append(row)
    if batch:
        _ticket_messages(out, values, info[current], batch, current in handoffs)  # type: ignore[index]

    channels = [k for k in values]
    for ch in channels:
        for metric, vals in values[ch].items():
            _summarise(out[ch], metric, vals, resolution_s)
    pooled_values: dict[str, list[float]] = defaultdict(list)
    for ch in channels:
        for metric, vals in values[ch].items():
            pooled_values[metric] += vals
    for metric, vals in pooled_values.items():
        _summarise(out[POOLED], metric, vals, 0)
    return dict(out)


def _add(values: dict[str, dict[str, list[float]]], ch: str, metric: str, v: float) -> None:
    values[ch][metric].append(v)


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


def _ticket_messages(out, values, info, batch, handed_off: bool) -> None:  # type: ignore[no-untyped-def]
    ch, cfm, fra = info
    outs = sorted(
        sent for _, d, kind, automated, _, sent, _, _ in batch
        if d == Message.Direction.OUTBOUND and kind == Message.Kind.MESSAGE and not automated
    )
    public_first = False
    for _, d, kind, automated, visibility, sent, received, account_kind in batch:
        if d != Message.Direction.INBOUND:
            continue
        _add(values, account_kind or ch, "ingest_lag", _seconds(received, sent))
        if visibility == "public" and sent == cfm:
            public_first = True
        if automated or fra is None or sent <= fra:
            continue
        i = bisect.bisect_left(outs, sent)
        if i < len(outs):
            _add(values, ch, "next_response", _seconds(outs[i], sent))
    if public_first:
        for key in (ch, POOLED):
            out[key].public_first += 1
            out[key].handed_off += handed_off


# --- PostgreSQL ---------------------------------------------------------------------------------

#: per-sort memory for the report's queries (the default 4 MB spills million-row sorts to disk)
WORK_MEM = "256MB"
_T = Ticket._meta.db_table
_M = Message._meta.db_table
_E = TicketEvent._meta.db_table
_A = Ticket._meta.get_field("origin_account").related_model._meta.db_table  # type: ignore[union-attr]


def _scope_sql(scope: Scope) -> tuple[str, list[object]]:
    sql = (
        "SELECT t.id, t.customer_first_message_at, t.first_response_at, t.first_response_business_s, t.solved_at, "
        "t.first_response_met, t.resolution_met, t.reopen_count, t.handoff_at, a.kind AS channel "
        f"FROM {_T} t JOIN {_A} a ON a.id = t.origin_account_id "
        "WHERE t.customer_first_message_at >= %s AND t.customer_first_message_at < %s"
    )
    params: list[object] = [scope.since, scope.until]
    if scope.group_ids is not None:
        sql += " AND t.group_id = ANY(%s)"
        params.append(sorted(scope.group_ids))
    return sql, params


def _pct_sql(expr: str, metric: str) -> str:
    qs = ",".join(str(q) for q in QUANTILES[metric])
    return f"percentile_cont(ARRAY[{qs}]::float8[]) WITHIN GROUP (ORDER BY {expr}), count({expr})"


def _postgres(scope: Scope, resolution_s: int) -> dict[str, Raw]:
    scope_sql, params = _scope_sql(scope)
    fr = "extract(epoch FROM (t.first_response_at - t.customer_first_message_at))::float8"
    res = "extract(epoch FROM (t.solved_at - t.customer_first_message_at))::float8"
    frb = "t.first_response_business_s"
    public_first = (
        f"EXISTS (SELECT 1 FROM {_M} m WHERE m.ticket_id = t.id AND m.direction = 'in' "
        "AND m.visibility = 'public' AND m.sent_at = t.customer_first_message_at)"
    )
    out: dict[str, Raw] = defaultdict(Raw)
    with connection.cursor() as cur:
        # percentile_cont and the window sort a million rows: in memory, not in external merges on disk
        cur.execute("SET work_mem = %s", [WORK_MEM])
        try:
            _pg_queries(cur, out, scope_sql, params, resolution_s, fr, res, frb, public_first)
        finally:
            cur.execute("RESET work_mem")
    return dict(out)


def _pg_queries(cur, out, scope_sql, params, resolution_s, fr, res, frb, public_first) -> None:  # type: ignore[no-untyped-def]
    cur.execute(
        f"""
        WITH t AS MATERIALIZED ({scope_sql})
        SELECT channel, GROUPING(channel), count(*), count(first_response_at),
               count(*) FILTER (WHERE first_response_met), count(first_response_met),
               count(*) FILTER (WHERE resolution_met), count(resolution_met),
               count(*) FILTER (WHERE reopen_count > 0),
               {_pct_sql(fr, "first_response")},
               {_pct_sql(frb, "first_response_business")},
               {_pct_sql(res, "resolution")}
        FROM t GROUP BY GROUPING SETS ((channel), ())
        """,
        params,
    )
    for row in cur.fetchall():
        raw = out[POOLED if row[1] else row[0]]
        (raw.volume, raw.answered, raw.fr_met, raw.fr_decided, raw.res_met, raw.res_decided, raw.reopened) = row[2:9]
        _pcts(raw, "first_response", row[9], row[10])
        _pcts(raw, "first_response_business", row[11], row[12])
        _pcts(raw, "resolution", row[13], row[14])

    cur.execute(
        f"""
        WITH t AS MATERIALIZED ({scope_sql})
        SELECT channel, GROUPING(channel), count(*), count(*) FILTER (WHERE handoff_at IS NOT NULL)
        FROM t WHERE {public_first} GROUP BY GROUPING SETS ((channel), ())
        """,
        params,
    )
    for ch, grouped, n, handed in cur.fetchall():
        raw = out[POOLED if grouped else ch]
        raw.public_first, raw.handed_off = n, handed

    cur.execute(
        f"""
        WITH t AS MATERIALIZED ({scope_sql})
        SELECT channel, GROUPING(channel), count(*) FROM {_E} e JOIN t ON t.id = e.ticket_id
        WHERE e.action = ANY(%s) AND e.old IS NOT NULL AND e.new IS NOT NULL
        GROUP BY GROUPING SETS ((channel), ())
        """,
        [*params, list(TRANSFER_ACTIONS)],
    )
    for ch, grouped, n in cur.fetchall():
        out[POOLED if grouped else ch].transfers = n

    lag = "extract(epoch FROM (m.received_at - m.sent_at))::float8"
    cur.execute(
        f"""
        WITH t AS MATERIALIZED ({scope_sql})
        SELECT coalesce(a.kind, t.channel) AS ch, GROUPING(coalesce(a.kind, t.channel)), {_pct_sql(lag, "ingest_lag")}
        FROM {_M} m JOIN t ON t.id = m.ticket_id LEFT JOIN {_A} a ON a.id = m.account_id
        WHERE m.direction = 'in' AND m.sent_at IS NOT NULL
        GROUP BY GROUPING SETS ((coalesce(a.kind, t.channel)), ())
        """,
        params,
    )
    for ch, grouped, pcts, n in cur.fetchall():
        _pcts(out[POOLED if grouped else ch], "ingest_lag", pcts, n)

    # each customer message after the first response, paired with the next agent message
    cur.execute(
        f"""
        WITH t AS MATERIALIZED ({scope_sql}),
        pairs AS MATERIALIZED (
          SELECT channel, extract(epoch FROM (next_out - sent_at))::float8 AS s FROM (
            SELECT t.channel, t.first_response_at, m.direction, m.automated, m.sent_at,
                   min(m.sent_at) FILTER (WHERE m.direction = 'out' AND m.kind = 'message' AND NOT m.automated)
                     OVER (PARTITION BY m.ticket_id ORDER BY m.sent_at
                           RANGE BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) AS next_out
            FROM {_M} m JOIN t ON t.id = m.ticket_id
            WHERE m.sent_at IS NOT NULL AND t.first_response_at IS NOT NULL
          ) x
          WHERE direction = 'in' AND NOT automated AND sent_at > first_response_at AND next_out IS NOT NULL
        )
        SELECT channel, GROUPING(channel), {_pct_sql("s", "next_response")}, NULL::bigint, NULL::bigint
        FROM pairs GROUP BY GROUPING SETS ((channel), ())
        UNION ALL
        SELECT channel, 0, NULL, NULL, floor(s / %s)::bigint, count(*) FROM pairs GROUP BY 1, 5
        """,
        [*params, resolution_s],
    )
    for ch, grouped, pcts, n, bucket, count in cur.fetchall():
        raw = out[POOLED if grouped else ch]
        if bucket is None:
            _pcts(raw, "next_response", pcts, n)
        else:
            raw.hist.setdefault("next_response", {})[bucket] = count

    cur.execute(
        f"""
        WITH t AS MATERIALIZED ({scope_sql})
        SELECT channel, v.metric, floor(v.s / %s)::bigint, count(*)
        FROM t CROSS JOIN LATERAL (VALUES
          ('first_response', {fr}), ('first_response_business', {frb}), ('resolution', {res})
        ) v(metric, s)
        WHERE v.s IS NOT NULL GROUP BY 1, 2, 3
        """,
        [*params, resolution_s],
    )
    for ch, metric, bucket, count in cur.fetchall():
        out[ch].hist.setdefault(metric, {})[bucket] = count


def _pcts(raw: Raw, metric: str, values: Iterable[float] | None, n: int) -> None:
    qs = QUANTILES[metric]
    vals = list(values) if values is not None else [None] * len(qs)
    raw.pct[metric] = {qname(q): v for q, v in zip(qs, vals)}
    raw.n[metric] = n or 0
