"""The ingest pipeline: store raw input first, apply it later, idempotently, in batches."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from omnidesk.broker import nudge
from omnidesk.customers.identities import InvalidIdentity
from omnidesk.plugins.contract import DeliveryUpdate, Ignored, InboundMessage, Invalid, MessageUpdate, RawEvent
from omnidesk.plugins.errors import PluginError
from omnidesk.plugins.models import ChannelAccount
from omnidesk.plugins.services import account_plugin
from omnidesk.sla.services import policies_loaded_once
from omnidesk.tickets.ingest import delivery_update_apply, message_ingest, message_update_apply
from omnidesk.workspace import live

from .models import InboundEvent

log = logging.getLogger(__name__)

#: attempts at one item when racing workers keep colliding on unique keys
RACE_RETRIES = 3
#: PostgreSQL's answers when workers' batches wait on each other (deadlock detected, serialization
#: failure, lock not available): the event is left pending and nudged again, never marked failed
LOCK_CONTENTION_SQLSTATES = frozenset({"40P01", "40001", "55P03"})


def inbound_event_store(*, account: ChannelAccount, raw: RawEvent) -> tuple[InboundEvent, bool]:
    """Commit raw input; a redelivery of the same item returns the stored row, created=False."""
    headers = {k: v for k, v in raw.headers.items()}
    try:
        with transaction.atomic():
            event = InboundEvent.objects.create(
                account=account, dedupe_key=raw.dedupe_key, body=raw.body, headers=headers
            )
        return event, True
    except IntegrityError:
        existing = InboundEvent.objects.filter(account=account, dedupe_key=raw.dedupe_key).first()
        if existing is None:  # the other insert rolled back after all; try once more
            return inbound_event_store(account=account, raw=raw)
        return existing, False


def inbound_event_enqueue(event_ids: list[int]) -> None:
    """Nudge a worker. Never raises: the event is stored and the sweep finds it if the broker is down."""
    from .tasks import apply_inbound_events

    nudge(apply_inbound_events, event_ids)


@dataclass
class ApplyReport:
    applied: int = 0
    failed: int = 0
    ignored: int = 0
    tickets: set[int] = field(default_factory=set)
    #: left pending because another worker's transaction held what they needed; re-enqueued
    deferred: list[int] = field(default_factory=list)


def inbound_events_apply(*, event_ids: list[int] | None = None, limit: int | None = None) -> ApplyReport:
    """Claim pending events (row locks, skipping ones another worker holds) and apply them.

    The events named are claimed first; the batch is topped up with other pending events so a
    burst is applied in few transactions. Each event has its own savepoint: a poison event is
    marked failed and never blocks the ones behind it.
    """
    limit = limit or settings.OMNIDESK["APPLY_BATCH"]
    report = ApplyReport()
    touched: dict[int, str] = {}
    with transaction.atomic():
        base = InboundEvent.objects.select_for_update(skip_locked=True).filter(status=InboundEvent.Status.PENDING)
        events = list(base.filter(pk__in=event_ids).order_by("pk")[:limit]) if event_ids else []
        if len(events) < limit:
            events += list(base.exclude(pk__in=[e.pk for e in events]).order_by("pk")[: limit - len(events)])
        if not events:
            return report
        accounts = {a.pk: a for a in ChannelAccount.objects.filter(pk__in={e.account_id for e in events})}
        with policies_loaded_once():
            for event in events:
                _apply_one(event, accounts[event.account_id], report, touched)
        if touched:
            changes = dict(touched)
            transaction.on_commit(lambda: live.tickets_changed(changes))
        if report.deferred:
            deferred = list(report.deferred)
            transaction.on_commit(lambda: inbound_event_enqueue(deferred))
    return report


def _apply_one(event: InboundEvent, account: ChannelAccount, report: ApplyReport, touched: dict[int, str]) -> None:
    event.attempts += 1
    summary: Counter[str] = Counter()
    notes: list[str] = []
    try:
        plugin = account_plugin(account)
        items = plugin.parse(RawEvent(body=bytes(event.body), headers=event.headers, source_key=event.dedupe_key))
        for item in items:
            _apply_item(account, item, event, summary, notes, touched)
    except (PluginError, InvalidIdentity) as exc:
        _finish(event, InboundEvent.Status.FAILED, f"{getattr(exc, 'code', 'invalid_identity')}: {exc}", summary, notes)
        report.failed += 1
        return
    except IntegrityError as exc:
        _finish(event, InboundEvent.Status.FAILED, f"could not be applied after {RACE_RETRIES} tries: {exc}", summary, notes)
        report.failed += 1
        return
    except Exception as exc:  # a plugin or core bug: keep the event, mark it, move on
        if _lock_contention(exc):  # a race, not a bug: try again in a later transaction
            log.info("event %s deferred: %s", event.pk, str(exc).splitlines()[0])
            report.deferred.append(event.pk)
            return
        log.exception("event %s of %s could not be applied", event.pk, account.slug)
        _finish(event, InboundEvent.Status.FAILED, f"internal error: {type(exc).__name__}: {exc}", summary, notes)
        report.failed += 1
        return
    if summary["messages"] or summary["duplicates"] or summary["updates"]:
        warning = f"{summary['invalid']} invalid record(s) skipped; see notes" if summary["invalid"] else ""
        _finish(event, InboundEvent.Status.PROCESSED, warning, summary, notes)
        report.applied += 1
    elif summary["invalid"]:
        _finish(event, InboundEvent.Status.FAILED, f"all {summary['invalid']} record(s) invalid; see notes", summary, notes)
        report.failed += 1
    else:
        _finish(event, InboundEvent.Status.IGNORED, "", summary, notes)
        report.ignored += 1
    report.tickets |= set(touched)


def _apply_item(account, item, event, summary, notes, touched) -> None:  # type: ignore[no-untyped-def]
    for attempt in range(RACE_RETRIES):
        try:
            with transaction.atomic():
                if isinstance(item, InboundMessage):
                    outcome = message_ingest(account=account, item=item, received_at=event.received_at)
                    summary["duplicates" if outcome.duplicate else "messages"] += 1
                    notes.extend(outcome.notes)
                    if not outcome.duplicate and outcome.message is not None:
                        touched[outcome.message.ticket_id] = "created" if outcome.ticket_created else "message"
                elif isinstance(item, DeliveryUpdate):
                    notes.append(delivery_update_apply(account=account, update=item))
                    summary["updates"] += 1
                elif isinstance(item, MessageUpdate):
                    notes.append(message_update_apply(account=account, update=item))
                    summary["updates"] += 1
                elif isinstance(item, Ignored):
                    summary[f"ignored:{item.event_type}"] += 1
                    notes.append(f"{item.event_type}: {item.reason}")
                elif isinstance(item, Invalid):
                    summary["invalid"] += 1
                    notes.append(f"invalid {item.where}: {item.reason}")
                else:
                    raise PluginError(f"parse() returned {type(item).__name__}, which is not part of the contract")
            return
        except InvalidIdentity as exc:
            # One unusable author (a garbled number in a CDR row) is one bad record, not a bad batch.
            summary["invalid"] += 1
            notes.append(f"invalid {getattr(item, 'external_id', '?')}: {exc}")
            return
        except IntegrityError:
            if attempt == RACE_RETRIES - 1:
                raise


def _lock_contention(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and getattr(exc.__cause__, "sqlstate", None) in LOCK_CONTENTION_SQLSTATES


def _finish(event: InboundEvent, status: str, error: str, summary: Counter[str], notes: list[str]) -> None:
    event.status = status
    event.error = error
    event.processed_at = timezone.now()
    event.summary = {**dict(summary), **({"notes": notes[:200]} if notes else {})}
    event.save(update_fields=["status", "error", "processed_at", "summary", "attempts"])


def inbound_event_retry(*, event: InboundEvent) -> None:
    """Put a failed or ignored event back in the queue (after a plugin fix, say)."""
    InboundEvent.objects.filter(pk=event.pk).update(status=InboundEvent.Status.PENDING, error="")
    transaction.on_commit(lambda: inbound_event_enqueue([event.pk]))


def inbound_pending_ids(*, older_than_s: float | None = None, limit: int = 10_000) -> list[int]:
    """Events still pending (broker was down, a worker died); all of them when older_than_s is 0."""
    after = settings.OMNIDESK["SWEEP_PENDING_AFTER_S"] if older_than_s is None else older_than_s
    cutoff = timezone.now() - timedelta(seconds=after)
    return list(
        InboundEvent.objects.filter(status=InboundEvent.Status.PENDING, received_at__lte=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
