"""Applying one normalized inbound item to tickets. Every channel goes through here."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Model
from django.utils import timezone

from omnidesk.customers.models import Customer, Identity
from omnidesk.customers.services import (
    IdentityLookups,
    author_refs,
    customer_resolve,
    identity_key,
)
from omnidesk.plugins.contract import (
    DeliveryUpdate,
    IdentityRef,
    InboundMessage,
    MessageUpdate,
)
from omnidesk.plugins.html import html_to_text, sanitize_html
from omnidesk.plugins.models import ChannelAccount
from omnidesk.reports.facts import report_facts_inbound
from omnidesk.routing.sentiment import message_sentiment
from omnidesk.routing.services import rules_after_customer_message
from omnidesk.rows import prepared_cursor, rows_insert
from omnidesk.sla.services import (
    Announcement,
    announcement_event,
    sla_agent_response,
    sla_customer_message,
    sla_recompute,
    sla_ticket_opened,
)

from .attachments import attachment_store
from .audit import ticket_event_record, ticket_events_add
from .models import Message, Ticket, TicketEvent, TicketThread
from .threading import (
    ThreadLookups,
    thread_bind,
    thread_key_for,
    ticket_find_for_message,
)

log = logging.getLogger(__name__)

#: a platform clock this far ahead of ours is not believed
MAX_CLOCK_SKEW = timedelta(minutes=5)
def _max_age() -> timedelta:
    """Older platform timestamps are not believed (a Date header from 1970). Historic CDR imports
    are legitimately old, hence a generous, configurable bound."""
    return timedelta(days=settings.OMNIDESK.get("MAX_MESSAGE_AGE_DAYS", 3650))


@dataclass
class Outcome:
    message: Message | None = None
    duplicate: bool = False
    ticket_created: bool = False
    notes: list[str] = field(default_factory=list)


def platform_time(sent_at: datetime | None, received_at: datetime) -> tuple[datetime, str]:
    """When the customer wrote, falling back to receipt time (and saying why) for absurd clocks."""
    if sent_at is None:
        return received_at, "the channel gave no send time; using receipt time"
    if timezone.is_naive(sent_at):
        return received_at, "the channel gave a send time without a time zone; using receipt time"
    if sent_at > received_at + MAX_CLOCK_SKEW:
        return received_at, f"send time {sent_at.isoformat()} is in the future; using receipt time"
    if sent_at < received_at - _max_age():
        return received_at, f"send time {sent_at.isoformat()} is implausibly old; using receipt time"
    return sent_at, ""


class IngestLookups:
    """What applying a batch of messages reads, in three queries for the whole batch: which
    external ids exist, the authors' identities, and the thread keys of known customers.

    Only a help: anything it was not built for is read as before, and after any rollback in the
    batch (a race, a bad item) `disable()` sends the rest of the batch down the per-item path.
    """

    def __init__(self, items: list[tuple[ChannelAccount, InboundMessage]]) -> None:
        asked = {(account.pk, item.external_id) for account, item in items}
        self._asked = asked
        self._existing: set[tuple[int, str]] = set()
        if asked:
            self._existing = _messages_existing(asked)
        primaries: list[tuple[ChannelAccount, InboundMessage, IdentityRef, list[IdentityRef]]] = []
        refs: list[IdentityRef] = []
        for account, item in items:
            try:
                primary, also, _ = author_refs(item.author, default_region=account.default_region)
            except Exception:  # noqa: BLE001, S112 - an unusable author is the per-item path's to report
                continue
            primaries.append((account, item, primary, also))
            refs += [primary, *also]
        self.identities = IdentityLookups(refs)
        keys = set()
        for account, item, primary, _ in primaries:
            identity = self.identities.get(primary)
            if item.thread_key and identity is not None and not identity.customer.merged_into_id:
                keys.add((account.pk, thread_key_for(customer=identity.customer, key=item.thread_key)))
        self.threads = ThreadLookups(keys, self.identities.customers_created)
        self.expected_rows = self._expected_rows(primaries)

    def _expected_rows(
        self, primaries: list[tuple[ChannelAccount, InboundMessage, IdentityRef, list[IdentityRef]]]
    ) -> dict[type[Model], int]:
        """The rows the batch's new messages will most likely INSERT, per model: a message each, and for an
        author not known yet a customer (unless an `also` identity links one), identities, a ticket and its
        thread. For `rows_deferred`'s ids: fewer only costs INSERTs of their own, more only skips ids."""
        counts = dict.fromkeys((Message, Customer, Identity, Ticket, TicketThread), 0)
        new_authors = set()
        for account, item, primary, also in primaries:
            if (account.pk, item.external_id) in self._existing:
                continue
            counts[Message] += 1
            author = (account.pk, *identity_key(primary))
            if self.identities.get(primary) is not None or author in new_authors:
                continue
            new_authors.add(author)
            missing = [ref for ref in also if self.identities.get(ref) is None]
            counts[Customer] += len(missing) == len(also)
            counts[Identity] += 1 + len(missing)
            counts[Ticket] += 1
            counts[TicketThread] += bool(item.thread_key)
        return counts

    @property
    def disabled(self) -> bool:
        return self.threads.disabled

    def disable(self) -> None:
        self.identities.disabled = self.threads.disabled = True

    def message_known_absent(self, account: ChannelAccount, external_id: str) -> bool:
        key = (account.pk, external_id)
        return not self.disabled and key in self._asked and key not in self._existing

    def message_added(self, account: ChannelAccount, external_id: str) -> None:
        self._existing.add((account.pk, external_id))


def _messages_existing(asked: set[tuple[int, str]]) -> set[tuple[int, str]]:
    """Which of the (account, external id) pairs asked about have a message: one IN list per column,
    on PostgreSQL a statement built once (the ORM compiled it per batch for more CPU than it ran), prepared."""
    accounts, external_ids = [*{a for a, _ in asked}], [*{e for _, e in asked}]
    if connection.vendor != "postgresql":
        found = Message.objects.filter(account_id__in=accounts, external_id__in=external_ids)
        return set(found.values_list("account_id", "external_id")) & asked
    with prepared_cursor() as cursor:
        cursor.execute(_messages_existing_sql(), [accounts, external_ids])
        return {(account_id, external_id) for account_id, external_id in cursor.fetchall()} & asked


@functools.cache
def _messages_existing_sql() -> str:
    quote = connection.ops.quote_name
    return (
        f"SELECT account_id, external_id FROM {quote(Message._meta.db_table)} "
        "WHERE account_id = ANY(%s) AND external_id = ANY(%s)"
    )


def message_ingest(
    *, account: ChannelAccount, item: InboundMessage, received_at: datetime, known: IngestLookups | None = None
) -> Outcome:
    """Customer → ticket → message → audit, idempotent on (account, external id).

    Call inside a transaction; an IntegrityError means another worker won a race and the
    caller retries, which then finds the existing rows. `known`: the batch's reads done
    beforehand (IngestLookups).
    """
    if known is None or not known.message_known_absent(account, item.external_id):
        existing = Message.objects.filter(account=account, external_id=item.external_id).first()
        if existing is not None:
            return Outcome(message=existing, duplicate=True)

    customer, identity, notes = customer_resolve(
        author=item.author, default_region=account.default_region, seen_at=item.sent_at or received_at,
        known=known.identities if known is not None else None,
    )
    sent_at, clock_note = platform_time(item.sent_at, received_at)
    if clock_note:
        notes.append(clock_note)
    outcome = Outcome(notes=notes)

    threads = known.threads if known is not None else None
    ticket, how = ticket_find_for_message(account=account, item=item, customer=customer, known=threads)
    if ticket is not None and ticket.status == Ticket.Status.CLOSED:
        notes.append(f"ticket #{ticket.pk} is closed; a follow-up ticket is opened")
        ticket = None
    if ticket is not None and ticket.origin_account_id == account.pk:
        ticket.origin_account = account  # already in hand: whoever reads it (report facts) spares a query
    answered_live = item.call is not None and item.call.direction == "inbound" and not item.call.missed
    if ticket is None:
        ticket = Ticket(
            subject=(item.subject or _subject_from_text(item.text))[:300],
            origin_account=account,
            customer=customer,
            group_id=account.default_group_id,
            customer_first_message_at=sent_at,
            last_customer_message_at=sent_at,
            resolution_running_since=sent_at,  # the SLA clock starts when the customer wrote
        )
        outcome.ticket_created = True
        if answered_live:
            ticket.save()  # the agent-response path below reads the ticket's messages back

    message = _message_build(
        ticket=ticket, account=account, item=item, identity=identity, sent_at=sent_at, received_at=received_at,
        clock_note=clock_note, notes=notes,
    )
    announced: list[Announcement] = []
    if ticket.pk is None:
        # A new ticket is written once, SLA fields and report facts included (no UPDATE after).
        report_facts_inbound(ticket=ticket, message=message)
        announced = sla_ticket_opened(ticket=ticket, message=message)
        rows_insert([ticket])
    if item.thread_key and not (how == "thread" and not outcome.ticket_created):
        thread_bind(account=account, customer=customer, key=item.thread_key, ticket=ticket, known=threads)
    rows_insert([message])
    attachment_notes = _store_attachments(message, item)
    if attachment_notes:
        notes += attachment_notes
        message.metadata = {**message.metadata, "notes": notes}
        message.save(update_fields=["metadata"])
    outcome.message = message
    if known is not None:
        known.message_added(account, item.external_id)
        threads.touched.add(ticket.pk)  # type: ignore[union-attr]
    _record_arrival(ticket, message, created=outcome.ticket_created, how=how, announced=announced)
    if not outcome.ticket_created or answered_live:
        _ticket_update_on_message(ticket, message, created=outcome.ticket_created, answered_live=answered_live)
    rules_after_customer_message(ticket=ticket, message=message, created=outcome.ticket_created)
    return outcome


def _message_build(  # type: ignore[no-untyped-def]
    *, ticket: Ticket, account: ChannelAccount, item: InboundMessage, identity, sent_at: datetime,
    received_at: datetime, clock_note: str, notes: list[str],
) -> Message:
    """The inbound message, not saved yet (a new ticket's SLA and facts are computed from it first)."""
    html = sanitize_html(item.html)
    text = item.text or (html_to_text(html) if html else "")
    metadata = dict(item.metadata)
    if clock_note:
        metadata["platform_sent_at"] = item.sent_at.isoformat() if item.sent_at else ""
        metadata["clock_note"] = clock_note
    if notes:
        metadata["notes"] = list(notes)
    return Message(
        ticket=ticket,
        account=account,
        external_id=item.external_id,
        event_type=item.event_type,
        thread_key=item.thread_key,
        direction=Message.Direction.INBOUND,
        kind=Message.Kind.CALL if item.call else Message.Kind.MESSAGE,
        visibility=item.visibility,
        author_identity=identity,
        subject=item.subject[:300],
        text=text,
        html=html,
        sent_at=sent_at,
        received_at=received_at,
        automated=item.automated,
        sentiment=message_sentiment(text=text, automated=item.automated, is_call=item.call is not None),
        reach_followers=item.author.followers,
        reach_verified=item.author.verified,
        call=_call_json(item),
        state=Message.State.RECEIVED,
        metadata=metadata,
    )


def _ticket_update_on_message(ticket: Ticket, message: Message, *, created: bool, answered_live: bool) -> None:
    """A saved ticket's fields, SLA and facts after the customer's message, in one UPDATE."""
    changed = _advance_ticket_on_customer_message(ticket, message, created=created)
    changed += report_facts_inbound(ticket=ticket, message=message)  # the parity report's facts (reports/facts.py)
    if answered_live:
        # Answered live: the customer was served while they called.
        if ticket.first_response_at is None:
            ticket.first_response_at = message.sent_at
            changed.append("first_response_at")
        if ticket.status == Ticket.Status.NEW:
            ticket.status = Ticket.Status.OPEN
            changed.append("status")
        sla_agent_response(ticket=ticket, also_save=changed)
    elif message.automated:
        sla_recompute(ticket=ticket, also_save=changed)
    else:
        sla_customer_message(ticket=ticket, at=message.sent_at, also_save=changed)  # type: ignore[arg-type]


def _record_arrival(
    ticket: Ticket, message: Message, *, created: bool, how: str, announced: list[Announcement] = ()  # type: ignore[assignment]
) -> None:
    """The audit rows of a new message (and of the ticket it opened, with its SLA announcements), in one INSERT."""
    rows = [TicketEvent(ticket=ticket, action="created", actor=TicketEvent.Actor.CUSTOMER, new=ticket.status)] if created else []
    rows.append(TicketEvent(
        ticket=ticket, action="message_added", actor=TicketEvent.Actor.CUSTOMER, message=message,
        note=(f"threaded by {how}" if how else "")[:500],
    ))
    rows += [TicketEvent(ticket=ticket, actor=TicketEvent.Actor.SYSTEM, **announcement_event(a)) for a in announced]
    ticket_events_add(rows)


def _advance_ticket_on_customer_message(ticket: Ticket, message: Message, *, created: bool) -> list[str]:
    """Ticket fields a customer message changes (saved by the caller together with the SLA fields)."""
    update: list[str] = []
    if not created:
        if ticket.last_customer_message_at is None or message.sent_at > ticket.last_customer_message_at:
            ticket.last_customer_message_at = message.sent_at
            update.append("last_customer_message_at")
        # An out-of-office answer to our "solved" mail must not reopen the ticket.
        if not message.automated:
            old = ticket.status
            if old == Ticket.Status.SOLVED:
                ticket.status = Ticket.Status.OPEN
                ticket.reopen_count += 1
                ticket.solved_at = None
                update += ["status", "reopen_count", "solved_at"]
                ticket_event_record(
                    ticket=ticket, action="reopened", actor=TicketEvent.Actor.CUSTOMER, field="status", old=old,
                    new=ticket.status, message=message,
                )
            elif old in (Ticket.Status.PENDING, Ticket.Status.ON_HOLD):
                ticket.status = Ticket.Status.OPEN
                update.append("status")
                ticket_event_record(
                    ticket=ticket, action="status_changed", actor=TicketEvent.Actor.CUSTOMER, field="status", old=old,
                    new=ticket.status, message=message,
                )
    return update


def _subject_from_text(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 80 else line[:79] + "…"


def _call_json(item: InboundMessage) -> dict | None:
    if item.call is None:
        return None
    c = item.call
    return {
        "direction": c.direction, "duration_s": c.duration_s, "missed": c.missed, "answered_by": c.answered_by,
        "recording_url": c.recording_url, "notes": c.notes,
    }


def _store_attachments(message: Message, item: InboundMessage) -> list[str]:
    notes = []
    for att in item.attachments:
        stored = attachment_store(
            message=message, filename=att.filename, content_type=att.content_type, content=att.content,
            content_id=att.content_id, inline=att.inline,
        )
        if isinstance(stored, str):
            notes.append(f"attachment {att.filename!r} not stored: {stored}")
    return notes


_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}


def delivery_update_apply(*, account: ChannelAccount, update: DeliveryUpdate) -> str:
    """A delivered/read/bounced notice about a message we sent (or a watermark over several)."""
    if update.watermark is not None and update.recipient is not None:
        return _watermark_apply(account, update)
    message = Message.objects.filter(
        account=account, external_id=update.external_id, direction=Message.Direction.OUTBOUND
    ).select_related("ticket", "outbound__to_identity").first()
    if message is None:
        return f"no outbound message {update.external_id!r}; notice recorded only"
    if update.state == "failed":
        message.state = Message.State.FAILED
        message.state_reason = update.reason[:500]
        message.save(update_fields=["state", "state_reason"])
        if update.permanent and hasattr(message, "outbound"):
            identity = message.outbound.to_identity
            identity.undeliverable = True
            identity.undeliverable_reason = update.reason[:300]
            identity.save(update_fields=["undeliverable", "undeliverable_reason"])
        ticket_event_record(
            ticket=message.ticket, action="delivery_failed", message=message, new=update.state,
            note=("permanent: " if update.permanent else "temporary: ") + update.reason,
        )
    elif _RANK.get(update.state, 0) > _RANK.get(message.state, 0):
        old = message.state
        message.state = update.state
        message.save(update_fields=["state"])
        ticket_event_record(
            ticket=message.ticket, action="delivery_state", message=message, field="state", old=old, new=update.state
        )
    return f"{update.state} applied to message {message.pk}"


def _watermark_apply(account: ChannelAccount, update: DeliveryUpdate) -> str:
    assert update.recipient is not None and update.watermark is not None
    lower = [state for state, rank in _RANK.items() if rank < _RANK.get(update.state, 0)]
    updated = Message.objects.filter(
        account=account,
        direction=Message.Direction.OUTBOUND,
        outbound__to_identity__kind=update.recipient.kind.value,
        outbound__to_identity__namespace=update.recipient.namespace,
        outbound__to_identity__value=update.recipient.value,
        sent_at__lte=update.watermark,
        state__in=lower,
    ).update(state=update.state)
    return f"{update.state} applied to {updated} message(s) up to {update.watermark.isoformat()}"


def message_update_apply(*, account: ChannelAccount, update: MessageUpdate) -> str:
    message = Message.objects.filter(
        account=account, external_id=update.external_id, direction=Message.Direction.INBOUND
    ).select_related("ticket").first()
    if message is None:
        return f"no message {update.external_id!r}; change recorded only"
    old_state = message.state
    fields = ["state"]
    if update.change == "edited":
        message.metadata = {**message.metadata, "original_text": message.metadata.get("original_text", message.text)}
        message.text = update.text
        fields += ["text", "metadata"]
        message.state = Message.State.EDITED
    elif update.change == "unhidden":
        message.state = Message.State.RECEIVED
    else:
        message.state = update.change
    message.save(update_fields=fields)
    ticket_event_record(
        ticket=message.ticket, action=f"message_{update.change}", actor=TicketEvent.Actor.CUSTOMER, message=message,
        field="state", old=old_state, new=message.state,
    )
    return f"message {message.pk} {update.change}"
