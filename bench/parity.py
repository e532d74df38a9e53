"""Channel parity report at scale: 1,000,000 tickets across four channels on PostgreSQL.

    python bench/parity.py [--tickets N] [--regenerate] [--explain] [--json]

The data (tickets, messages, transfer events, SLA outcomes, and the per-ticket report facts the
services would have stored: omnidesk/reports/facts.py) is generated with COPY into
DATABASE_URL (default postgres://postgres@127.0.0.1:5432/omnidesk_bench_parity, created and
migrated when missing) and reused by later runs unless --regenerate. Then the whole report
(every channel, pooled, parity tests) is timed cold (a fresh connection), warm, and warm without
parallel workers (max_parallel_workers_per_gather = 0), whose CPU is then the whole cost.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import bench_django, postgres_cpu_seconds, report, say  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/omnidesk_bench_parity"
START = datetime(2025, 1, 1, tzinfo=timezone.utc)
DAYS = 365
#: kind: (share of tickets, answered, median first response s, public share, SLA target s, median lag s)
CHANNELS = {
    "email": (0.40, 0.97, 3 * 3600, 0.0, 8 * 3600, 20),
    "twitter": (0.25, 0.65, 2 * 3600, 0.8, 2 * 3600, 3),
    "facebook": (0.20, 0.80, 4 * 3600, 0.6, 4 * 3600, 5),
    "phone": (0.15, 0.92, 1800, 0.0, 3600, 0),
}


def generate(n: int, seed: int = 10) -> None:
    from django.db import connection

    from bench._common import reset_data
    from omnidesk.customers.models import Customer
    from omnidesk.plugins.models import ChannelAccount
    from omnidesk.reports.facts import facts_from_messages
    from omnidesk.routing.models import Group
    from omnidesk.tickets.models import Ticket

    reset_data()
    samples = Ticket._meta.get_field("next_response_samples")  # the stored form of a sample list
    rng = random.Random(seed)
    groups = [Group.objects.create(name=name).pk for name in ("Support", "Billing")]
    accounts = {k: ChannelAccount.objects.create(kind=k, slug=f"{k}-bench", name=k).pk for k in CHANNELS}
    customer = Customer.objects.create(display_name="bench").pk
    kinds = list(CHANNELS)
    weights = [CHANNELS[k][0] for k in kinds]
    now = datetime.now(timezone.utc)
    conn = connection.connection  # psycopg 3
    t0 = time.perf_counter()
    mid = eid = 0
    tickets: list[tuple] = []  # type: ignore[type-arg]
    messages: list[tuple] = []  # type: ignore[type-arg]
    events: list[tuple] = []  # type: ignore[type-arg]
    with conn.cursor() as cur:
        for tid in range(1, n + 1):
            kind = rng.choices(kinds, weights)[0]
            _, p_answer, median_fr, p_public, target, median_lag = CHANNELS[kind]
            cfm = START + timedelta(seconds=rng.random() * DAYS * 86400)
            fr = rng.lognormvariate(math.log(median_fr), 1.0) if rng.random() < p_answer else None
            frb = fr * 0.55 if fr is not None else None
            fr_met = None if frb is None else frb <= target
            solved = fr + rng.lognormvariate(math.log(20 * 3600), 1.2) if fr is not None and rng.random() < 0.75 else None
            res_met = None if solved is None else solved * 0.55 <= 3 * 86400
            reopens = 1 if solved is not None and rng.random() < 0.06 else 0
            public = rng.random() < p_public
            handoff = cfm + timedelta(seconds=fr + 60) if public and fr is not None and rng.random() < 0.35 else None
            at = lambda s: cfm + timedelta(seconds=s)  # noqa: E731
            tickets.append((
                tid, "bench", "solved" if solved is not None else "open", "normal", accounts[kind], customer,
                groups[tid % 2], "[]", now, now, cfm, cfm, at(fr) if fr is not None else None,
                at(solved) if solved is not None else None, reopens, handoff, "", 0.0, "[]",
                frb, fr_met, res_met,
            ))
            vis = "public" if public else "private"
            lag = rng.expovariate(1 / median_lag) if median_lag else 0.0
            first = len(messages)
            mid += 1
            messages.append((mid, tid, accounts[kind], "in", "call" if kind == "phone" else "message", vis, cfm,
                             cfm + timedelta(seconds=lag)))
            if fr is not None:
                mid += 1
                messages.append((mid, tid, accounts[kind], "out", "message", vis, at(fr), at(fr)))
                if rng.random() < 0.5:
                    follow = fr + rng.expovariate(1 / 7200)
                    mid += 1
                    messages.append((mid, tid, accounts[kind], "in", "message", vis, at(follow), at(follow + lag)))
                    if rng.random() < 0.85:
                        mid += 1
                        reply = follow + rng.lognormvariate(math.log(median_fr / 2), 1.0)
                        messages.append((mid, tid, accounts[kind], "out", "message", vis, at(reply), at(reply)))
            facts = facts_from_messages(
                channel=kind, first_message_at=cfm, first_response_at=at(fr) if fr is not None else None,
                messages=[(m[3], m[4], False, m[5], m[6], m[7], kind) for m in messages[first:]],
            )
            transferred = rng.random() < 0.12
            tickets[-1] += (facts["first_message_public"], samples.get_prep_value(facts["next_response_samples"]),
                            samples.get_prep_value(facts["ingest_lag_samples"]), json.dumps(facts["ingest_lag_elsewhere"]),
                            int(transferred))
            if transferred:
                eid += 1
                events.append((eid, tid, now, "agent", "assignee_changed", "assignee", "1", "2"))
            if tid % 100_000 == 0 or tid == n:
                _copy(cur, tickets, messages, events)
                tickets, messages, events = [], [], []
                say(f"{tid:,} tickets, {mid:,} messages ({time.perf_counter() - t0:.0f} s)")
        for table, top in (("tickets_ticket", n), ("tickets_message", mid), ("tickets_ticketevent", max(eid, 1))):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), %s)", [top])
    conn.commit()
    conn.autocommit = True  # VACUUM: the visibility map, so index-only scans need not visit the heap
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE tickets_ticket")
        cur.execute("VACUUM ANALYZE tickets_message")
        cur.execute("VACUUM ANALYZE tickets_ticketevent")
    conn.autocommit = False
    say(f"generated {n:,} tickets, {mid:,} messages, {eid:,} transfers in {time.perf_counter() - t0:.0f} s")


def _copy(cur, tickets, messages, events) -> None:  # type: ignore[no-untyped-def]
    with cur.copy(
        "COPY tickets_ticket (id, subject, status, priority, origin_account_id, customer_id, group_id, tags, "
        "created_at, updated_at, customer_first_message_at, last_customer_message_at, first_response_at, "
        "solved_at, reopen_count, handoff_at, sla_reason, resolution_used_s, sla_announced, "
        "first_response_business_s, first_response_met, resolution_met, first_message_public, next_response_samples, "
        "ingest_lag_samples, ingest_lag_elsewhere, transfer_count) FROM STDIN"
    ) as copy:
        for t in tickets:
            copy.write_row(t)
    with cur.copy(
        "COPY tickets_message (id, ticket_id, account_id, direction, kind, visibility, sent_at, received_at, "
        "external_id, event_type, thread_key, subject, text, html, automated, state, state_reason, metadata, created_at) "
        "FROM STDIN"
    ) as copy:
        for m in messages:
            copy.write_row((*m, None, "", "", "", "", "", False, "received" if m[3] == "in" else "sent", "", "{}", m[7]))
    with cur.copy(
        "COPY tickets_ticketevent (id, ticket_id, at, actor, action, field, old, new, note) FROM STDIN"
    ) as copy:
        for e in events:
            copy.write_row((*e, ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--regenerate", action="store_true", help="drop the generated data and make it again")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object, last line")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of the report's queries")
    args = parser.parse_args()

    bench_django(DEFAULT_URL)
    from django.db import connection

    from omnidesk.reports.metrics import Scope
    from omnidesk.reports.parity import parity_report
    from omnidesk.tickets.models import Ticket

    if args.regenerate or Ticket.objects.count() != args.tickets:
        generate(args.tickets)
    else:
        say(f"reusing the {args.tickets:,} tickets already in the database (--regenerate to make them again)")
    tickets = Ticket.objects.count()
    scope = Scope(since=START, until=START + timedelta(days=DAYS))

    connection.close()  # cold: a fresh connection, nothing prepared
    t = time.perf_counter()
    result = parity_report(scope=scope)
    cold = time.perf_counter() - t
    warm_runs, cpu_runs = [], []
    for _ in range(3):
        t, cpu = time.perf_counter(), _cpu_seconds(connection)
        parity_report(scope=scope)
        warm_runs.append(time.perf_counter() - t)
        cpu_runs.append(_cpu_seconds(connection) - cpu)
    warm, cpu = min(warm_runs), min(cpu_runs)
    serial, serial_cpu = _serial(connection, scope)
    load = os.getloadavg()[0]
    if args.explain:
        _explain(scope)

    lines = [
        ("tickets", f"{tickets:,}"),
        ("channels", ", ".join(f"{c['channel']} {c['volume']:,}" for c in result["channels"])),
        ("report, cold (s)", f"{cold:.2f}"),
        ("report, warm (s, best of 3)", f"{warm:.2f}"),
        ("CPU per warm report (s, this process + its PostgreSQL backend; parallel workers not seen)", f"{cpu:.2f}"),
        ("report without parallel workers (s, best of 2)", f"{serial:.2f}"),
        ("CPU per report without parallel workers (s, all of it: process + backend)", f"{serial_cpu:.2f}"),
        ("load average (1 min) after the runs", f"{load:.1f}"),
        ("target", "< 2 s " + ("met" if warm < 2 else "NOT met")),
        ("flags", "; ".join(f"{f['channel']} {f['metric']} {f['comparison']}" for f in result["flags"]) or "none"),
    ]
    report("parity report on PostgreSQL", lines,
           {"tickets": tickets, "report_s": round(warm, 3), "report_cold_s": round(cold, 3),
            "report_cpu_s": round(cpu, 3), "report_serial_s": round(serial, 3), "report_serial_cpu_s": round(serial_cpu, 3),
            "load_avg": round(load, 1)}, as_json=args.json)


def _serial(connection, scope) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(time, CPU) of the best of two reports with parallel query off: the CPU is then the whole cost."""
    from omnidesk.reports.parity import parity_report

    runs = []
    with connection.cursor() as cur:
        cur.execute("SET max_parallel_workers_per_gather = 0")
        for _ in range(2):
            t, cpu = time.perf_counter(), _cpu_seconds(connection)
            parity_report(scope=scope)
            runs.append((time.perf_counter() - t, _cpu_seconds(connection) - cpu))
        cur.execute("RESET max_parallel_workers_per_gather")
    return min(r[0] for r in runs), min(r[1] for r in runs)


def _cpu_seconds(connection) -> float:  # type: ignore[no-untyped-def]
    """CPU so far of this process and of its PostgreSQL backend (parallel workers exit unseen: a lower bound)."""
    name = connection.settings_dict["NAME"]
    return time.process_time() + sum(postgres_cpu_seconds(name).values())


def _explain(scope) -> None:  # type: ignore[no-untyped-def]
    import psycopg
    from django.db import connection

    from omnidesk.reports import metrics

    with psycopg.Cursor(connection.connection) as cur:
        cur.execute(f"SET work_mem = '{metrics.WORK_MEM}'")
        cur.execute("SET jit = off")
        sql, params = metrics._statement(cur, scope)
        t = time.perf_counter()
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        plan = "\n".join(r[0] for r in cur.fetchall())
        print(f"--- {time.perf_counter() - t:.2f} s\n{plan}\n", file=sys.stderr)
        cur.execute("RESET work_mem")
        cur.execute("RESET jit")


if __name__ == "__main__":
    main()
