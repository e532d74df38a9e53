"""python manage.py report_facts_backfill [--batch N]: recompute every ticket's stored report facts."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from omnidesk.reports.facts import facts_backfill


class Command(BaseCommand):
    help = (
        "Recompute the per-ticket facts the parity report reads (first message public, next-response and "
        "ingest-lag samples) from the messages. Migration tickets 0003 runs it once; run it again after "
        "importing tickets or messages behind the services' back."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch", type=int, default=5000, help="tickets per transaction (default 5000)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1")
        started = time.perf_counter()
        done = facts_backfill(batch=options["batch"])
        self.stdout.write(f"report facts of {done} tickets recomputed in {time.perf_counter() - started:.1f} s")
