"""`manage.py import_calls FILE --account SLUG`: a call-log file through the ingest pipeline."""

from __future__ import annotations

import json
import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from omnidesk.inbox.imports import ImportRefused, ImportSummary, calls_import
from omnidesk.plugins.models import ChannelAccount

BAR_WIDTH = 30


class Command(BaseCommand):
    help = (
        "Import a call-log file (CDR CSV in the account's cdr_format) into a phone channel account: "
        "each chunk of rows is stored as an inbound event and applied at once. Importing the same file "
        "again adds nothing; after fixing bad rows, only what was missing is added. Prints a progress "
        "bar (stderr) and a summary with the line number and reason of every invalid row. "
        "Exit status 1 when nothing could be imported and rows were invalid."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", help="the CDR file (Master.csv, a FreeSWITCH CSV, …); - for stdin")
        parser.add_argument("--account", required=True, metavar="SLUG", help="the phone channel account's slug")
        parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        account = ChannelAccount.objects.filter(slug=options["account"]).first()
        if account is None:
            known = ", ".join(ChannelAccount.objects.filter(kind="phone").values_list("slug", flat=True)[:20])
            raise CommandError(f"no channel account {options['account']!r} (phone accounts: {known or 'none'})")
        data = self._read(options["file"])
        show = not options["no_progress"]
        try:
            summary = calls_import(account=account, data=data, progress=self._bar if show else None)
        except ImportRefused as exc:
            raise CommandError(str(exc)) from None
        if show:
            self.stderr.write("")
        if options["json"]:
            self.stdout.write(json.dumps(summary.as_dict()))
        else:
            for line in summary.lines():
                self.stdout.write(line)
        if summary.invalid_count and not (summary.imported or summary.duplicates or summary.ignored):
            raise CommandError(f"no row of {options['file']} could be imported")

    def _read(self, file: str) -> bytes:
        if file == "-":
            return sys.stdin.buffer.read()
        try:
            with open(file, "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror or exc}") from None

    def _bar(self, done: int, total: int, summary: ImportSummary) -> None:
        filled = BAR_WIDTH * done // max(total, 1)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        self.stderr.write(
            f"\r[{bar}] {done}/{total} chunks, {summary.rows} rows: {summary.imported} new, "
            f"{summary.duplicates} dup, {summary.invalid_count} invalid",
            ending="",
        )
        self.stderr.flush()
