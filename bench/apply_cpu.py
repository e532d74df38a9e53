#!/usr/bin/env python3
"""What applying costs a worker, measured in one process: CPU and statements per event.

Stores N events the way the webhook (or the IMAP poller, --mail) does, then applies them
with `inbound_events_apply` in batches, and reports this process's CPU time, the CPU of the
PostgreSQL backend serving it and the statements sent, per event. No web server, broker or
other process shares the measurement, so the figures hold on a loaded machine where rates do
not (docs/benchmarks.md compares commits with it).

    python bench/apply_cpu.py [--events 1000] [--batch 10] [--mail] [--json]

Events: bench/ingest.py's mix (30 % follow-ups on earlier threads, the rest new customers
with an email address), or with --mail the plain-text customer mails of bench/email_ingest.py.
PostgreSQL from DATABASE_URL (default postgres://postgres@127.0.0.1:5432/omnidesk_bench, created
and migrated when missing; its data is reset at the start of every run).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

from _common import bench_django, report, reset_data, say


def api_bodies(count: int, rng: random.Random) -> list[bytes]:
    threads: list[tuple[str, int]] = []
    bodies = []
    for i in range(count):
        if threads and rng.random() < 0.3:
            thread, author = threads[rng.randrange(max(0, len(threads) - 2000), len(threads))]
        else:
            thread, author = f"th-{i}", i
            threads.append((thread, author))
        bodies.append(json.dumps({
            "id": f"ev-{i}", "thread": thread, "text": f"My order #{100000 + i} has not arrived.",
            "author": {"id": f"cust-{author}", "name": f"Customer {author}", "email": f"customer{author}@example.com"},
            "sent_at": "2026-11-02T09:15:00Z",
        }).encode())
    return bodies


def backend_cpu_s(pid: int) -> float:
    """utime + stime of a local PostgreSQL backend (0 when its /proc entry is not readable)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=10, help="events per transaction (OMNIDESK_APPLY_BATCH)")
    parser.add_argument("--mail", action="store_true", help="email events instead of generic-API webhooks")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    bench_django()
    reset_data()

    from django.db import connection

    from omnidesk.inbox.services import inbound_event_store, inbound_events_apply
    from omnidesk.plugins.contract import RawEvent
    from omnidesk.plugins.services import channel_account_save

    if args.mail:
        from email_ingest import build_mail

        account = channel_account_save(
            kind="email", slug="bench-email", name="Bench mailbox", secrets={"password": "unused"},
            config={"address": "support@bench.example", "imap_host": "127.0.0.1", "imap_port": 1,
                    "imap_security": "none", "username": "bench", "ack": "seen"},
        )
        raws = [RawEvent(body=build_mail(i, "cpu")[1], source_key=f"INBOX:1:{i}") for i in range(args.events)]
    else:
        account = channel_account_save(
            kind="api", slug="bench-api", name="Bench", config={"callback_url": ""}, secrets={"secret": "unused"}
        )
        raws = [RawEvent(body=b, headers={"content-type": "application/json"})
                for b in api_bodies(args.events, random.Random(7))]
    for raw in raws:
        inbound_event_store(account=account, raw=raw)
    say(f"{len(raws)} events stored; applying in batches of {args.batch}")

    statements = [0]

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        statements[0] += 1
        return execute(sql, params, many, context)

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    applied, cpu, pg, wall = 0, 0.0, 0.0, 0.0
    with connection.execute_wrapper(count):
        while True:
            if applied % 500 < args.batch:  # autovacuum may be off (CI): keep the planner's statistics fresh
                with connection.cursor() as cursor:
                    cursor.execute("ANALYZE tickets_message, tickets_ticket, tickets_ticketthread, customers_identity, "
                                   "inbox_inboundevent, tickets_ticketevent")
            t0, p0, w0 = time.process_time(), backend_cpu_s(pid), time.perf_counter()
            done = inbound_events_apply(limit=args.batch)
            cpu += time.process_time() - t0
            pg += backend_cpu_s(pid) - p0
            wall += time.perf_counter() - w0
            if not (done.applied or done.failed or done.ignored):
                break
            applied += done.applied
    per = max(applied, 1)
    figures = {
        "events": len(raws), "applied": applied, "batch": args.batch, "kind": "mail" if args.mail else "api",
        "worker_cpu_ms_per_event": round(cpu / per * 1000, 2), "postgres_cpu_ms_per_event": round(pg / per * 1000, 2),
        "statements_per_event": round(statements[0] / per, 2), "wall_ms_per_event": round(wall / per * 1000, 2),
        "load_average": float(open("/proc/loadavg").read().split()[0]),
    }
    report(
        "apply cost per event (one worker process)",
        [
            ("events", f"{applied} of {len(raws)} applied ({figures['kind']}, batches of {args.batch})"),
            ("worker CPU", f"{figures['worker_cpu_ms_per_event']} ms per event"),
            ("PostgreSQL backend CPU", f"{figures['postgres_cpu_ms_per_event']} ms per event"),
            ("statements", f"{figures['statements_per_event']} per event"),
            ("load average (1 min)", figures["load_average"]),
        ],
        figures,
        as_json=args.json,
    )


if __name__ == "__main__":
    main()
