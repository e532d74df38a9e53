#!/usr/bin/env python
"""SLA engine at scale on PostgreSQL: recompute deadlines for open tickets, sweep 1,000,000 for what is due.

    python bench/sla.py [--tickets 1000000] [--open 100000] [--due 100] [--regenerate] [--json]

Data (tickets of one account and customer, the shipped Standard policy) is generated once with
COPY and reused; --regenerate starts again. Figures:
  sweep_ms         one sla_sweep() over all tickets with `--due` tickets due (find + announce + commit)
  sweep_find_ms    the sweep's indexed "what is due" query alone
  recompute_per_s  sla_recompute_open() over the open tickets (batches, bulk writes)
Targets on 2 cores: sweep under 200 ms; recompute at ≥ 5,000 tickets/s.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    bench_django, postgres_cpu_seconds, report, reset_data, say,
)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/omnidesk_bench_sla"


def generate(total: int, open_count: int) -> None:
    from django.db import connection

    from omnidesk.customers.models import Customer
    from omnidesk.plugins.services import channel_account_save
    from omnidesk.sla.models import Policy

    reset_data()
    account = channel_account_save(kind="api", slug="bench", name="bench", config={}, secrets={"secret": "s"})
    customer = Customer.objects.create(display_name="bench")
    shipped = importlib.import_module("omnidesk.sla.migrations.0002_default_policy")
    policy = Policy.objects.create(name="Standard", position=1000, targets=shipped.TARGETS)  # reset_data emptied it
    now = datetime.now(timezone.utc)
    say(f"generating {total:,} tickets ({open_count:,} open) with COPY")
    columns = (
        "subject, status, priority, origin_account_id, customer_id, tags, created_at, updated_at, reopen_count, "
        "sla_reason, resolution_used_s, sla_announced, customer_first_message_at, sla_policy_id, "
        "resolution_running_since, awaiting_response_since, sla_next_check_at"
    )
    started = time.monotonic()
    with connection.cursor() as cur, cur.connection.cursor().copy(f"COPY tickets_ticket ({columns}) FROM STDIN") as copy:
        for n in range(total):
            is_open = n < open_count
            wrote = now - timedelta(minutes=(n % 2000))
            # open tickets come due over the next days; solved ones have nothing left to check
            check = (now + timedelta(seconds=60 + n * 3)).isoformat() if is_open else "\\N"
            copy.write_row(
                (
                    f"bench {n}", "open" if is_open else "solved", "normal", account.pk, customer.pk, "[]",
                    wrote.isoformat(), wrote.isoformat(), 0, "", 0.0, "[]", wrote.isoformat(), policy.pk,
                    wrote.isoformat() if is_open else None, wrote.isoformat() if is_open else None,
                    None if check == "\\N" else check,
                )
            )
    with connection.cursor() as cur:
        cur.execute("ANALYZE tickets_ticket")
    say(f"generated in {time.monotonic() - started:.0f}s")


def forget_sla_state() -> None:
    """Every run recomputes the same work: open tickets as if never computed (all announce again)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("DELETE FROM tickets_ticketevent WHERE action LIKE 'sla_%%'")
        cur.execute(
            "UPDATE tickets_ticket SET sla_announced = '[]', first_response_due_at = NULL, resolution_due_at = NULL,"
            " sla_due_at = NULL, sla_policy_id = NULL, sla_reason = '' WHERE status NOT IN ('solved', 'closed')"
        )
        cur.execute("VACUUM ANALYZE tickets_ticket")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=100, help="tickets made due right before the sweep")
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    url = bench_django(DEFAULT_URL)
    from django.db import connection
    from django.utils import timezone as djtz

    from omnidesk.sla.services import sla_recompute_open, sla_sweep
    from omnidesk.tickets.models import Ticket, TicketEvent

    if args.regenerate or Ticket.objects.count() != args.tickets:
        generate(args.tickets, args.open)

    forget_sla_state()
    say(f"recomputing {args.open:,} open tickets")
    database = url.rsplit("/", 1)[-1]
    pg_before, cpu_before, load_before = postgres_cpu_seconds(database), time.process_time(), os.getloadavg()
    started = time.monotonic()
    done = sla_recompute_open(batch=1000)
    recompute_s = time.monotonic() - started
    python_cpu = time.process_time() - cpu_before
    pg_after = postgres_cpu_seconds(database)
    pg_cpu = sum(pg_after[pid] - pg_before.get(pid, 0.0) for pid in pg_after)
    events = TicketEvent.objects.filter(action__startswith="sla_").count()

    # a minute's worth of work: exactly `--due` tickets due now, the rest later
    Ticket.objects.filter(status="open").update(sla_next_check_at=djtz.now() + timedelta(hours=1))
    ids = list(Ticket.objects.filter(status="open").order_by("pk").values_list("pk", flat=True)[: args.due])
    Ticket.objects.filter(pk__in=ids).update(sla_next_check_at=djtz.now() - timedelta(seconds=1), sla_announced=[])
    with connection.cursor() as cur:
        cur.execute("ANALYZE tickets_ticket")
    find = Ticket.objects.filter(sla_next_check_at__lte=djtz.now()).order_by("sla_next_check_at")[:1000]
    started = time.monotonic()
    found = len(list(find.values_list("pk", flat=True)))
    find_ms = (time.monotonic() - started) * 1000
    plan = find.values_list("pk", flat=True).explain()
    started = time.monotonic()
    swept = sla_sweep()
    sweep_ms = (time.monotonic() - started) * 1000
    second_started = time.monotonic()
    sla_sweep()  # nothing due any more: the cost of a quiet minute
    quiet_ms = (time.monotonic() - second_started) * 1000

    figures = {
        "tickets": Ticket.objects.count(),
        "sweep_ms": round(sweep_ms, 1),
        "sweep_find_ms": round(find_ms, 2),
        "sweep_quiet_ms": round(quiet_ms, 2),
        "swept_tickets": len(swept),
        "recompute_per_s": round(done / recompute_s),
        "recomputed": done,
        "recompute_events": events,
        # CPU per ticket does not move with the neighbours' load: 2 cores / (python + postgres) is the ceiling
        "recompute_python_cpu_us": round(python_cpu / done * 1e6, 1),
        "recompute_postgres_cpu_us": round(pg_cpu / done * 1e6, 1),
        "load_avg": [round(x, 2) for x in load_before],
    }
    report(
        "SLA engine on PostgreSQL",
        [
            ("tickets in the table", f"{figures['tickets']:,}"),
            (f"sweep with {found} due", f"{sweep_ms:.1f} ms ({len(swept)} tickets announced)"),
            ("  of which the due query", f"{find_ms:.2f} ms"),
            ("sweep with nothing due", f"{quiet_ms:.2f} ms"),
            ("recompute", f"{done:,} open tickets in {recompute_s:.1f} s = {figures['recompute_per_s']:,}/s"
                          f" ({events:,} warnings/breaches announced)"),
            ("  CPU per ticket", f"python {figures['recompute_python_cpu_us']} µs + postgres "
                                 f"{figures['recompute_postgres_cpu_us']} µs"),
            ("load average", figures["load_avg"]),
            ("due-query plan", plan.splitlines()[0][:90]),
        ],
        figures,
        as_json=args.json,
    )


if __name__ == "__main__":
    main()
