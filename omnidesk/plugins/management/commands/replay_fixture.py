"""`manage.py replay_fixture <account-slug> <file>`: a payload through the whole pipeline, now."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from omnidesk.inbox.models import InboundEvent
from omnidesk.inbox.services import inbound_event_store, inbound_events_apply
from omnidesk.plugins.contract import RawEvent
from omnidesk.plugins.management import fail, read_payload
from omnidesk.plugins.models import ChannelAccount
from omnidesk.tickets.models import Ticket


class Command(BaseCommand):
    help = (
        "Push a payload file through the whole ingest pipeline as if it had just arrived for the account: "
        "store it as a new inbound event (deduplicated by a hash of the body, like a webhook redelivery), "
        "apply it at once in this process, and print the event's status, error, summary and the tickets "
        "created or updated. The webhook signature is NOT verified: this is a trusted local command. "
        "Exit status 1 when the event failed."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("slug", help="the channel account's slug (as in /hooks/<slug>/)")
        parser.add_argument("file", help="the raw payload, byte for byte")
        parser.add_argument(
            "--headers",
            metavar="FILE",
            help="a JSON object of the headers it arrived with (default: <name>.headers.json beside FILE, if any)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        account = ChannelAccount.objects.filter(slug=options["slug"]).first()
        if account is None:
            known = ", ".join(ChannelAccount.objects.values_list("slug", flat=True)[:20]) or "none"
            fail(self, "UnknownAccount", f"no channel account with slug {options['slug']!r} (accounts: {known})")
        body, headers = read_payload(self, options["file"], options["headers"])
        event, created = inbound_event_store(account=account, raw=RawEvent(body=body, headers=headers))
        if not created:
            self.stdout.write(
                f"duplicate, already stored as event {event.pk} (status {event.status}); nothing replayed"
            )
            return
        newest_before = Ticket.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        # limit=1: apply this event only, not whatever else is pending (the workers take those).
        report = inbound_events_apply(event_ids=[event.pk], limit=1)
        event.refresh_from_db()
        disabled = "" if account.enabled else " (the account is disabled; replayed anyway)"
        self.stdout.write(
            f"stored as event {event.pk} for {account.slug} ({account.kind}), {len(body)} bytes{disabled}"
        )
        self.stdout.write(f"status: {event.status}")
        if event.error:
            self.stdout.write(f"error: {event.error}")
        summary = {k: v for k, v in event.summary.items() if k != "notes"}
        self.stdout.write(f"summary: {json.dumps(summary, sort_keys=True)}")
        for note in event.summary.get("notes", []):
            self.stdout.write(f"note: {note}")
        for ticket in Ticket.objects.filter(pk__in=report.tickets).order_by("pk"):
            how = "created" if ticket.pk > newest_before else "updated"
            self.stdout.write(f"ticket #{ticket.pk} {how}: {ticket.subject!r} (status {ticket.status})")
        if event.status == InboundEvent.Status.FAILED:
            raise SystemExit(1)
