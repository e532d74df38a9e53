"""Agents answering: replies go through the outbox; notes stay internal."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from omnidesk.customers.models import Identity
from omnidesk.plugins.contract import OutboundReply, Visibility
from omnidesk.plugins.errors import CapabilityError
from omnidesk.plugins.html import sanitize_html
from omnidesk.plugins.services import account_plugin

from .audit import ticket_event_record
from .models import Message, OutboundMessage, Ticket, TicketEvent


class ReplyRefused(Exception):
    """A reply the desk will not queue; the message says why, for the agent."""


def _last_inbound(ticket: Ticket, identity: Identity | None) -> Message | None:
    qs = Message.objects.filter(ticket=ticket, direction=Message.Direction.INBOUND, account__isnull=False)
    if identity is not None:
        qs = qs.filter(author_identity=identity)
    return qs.select_related("account", "author_identity").order_by("-sent_at", "-pk").first()


def reply_create(
    *,
    ticket: Ticket,
    user: Any,
    text: str,
    visibility: Visibility | None = None,
    identity: Identity | None = None,
    html: str = "",
    automated: bool = False,
) -> Message:
    """Queue a reply on the channel and identity of the customer's last message (or the one chosen).

    The plugin's declared capabilities are checked before anything is stored: a reply that is
    too long or on a channel that cannot send is refused with the plugin's typed error.
    """
    if identity is not None and identity.customer_id != ticket.customer_id:
        raise ReplyRefused("that identity belongs to another customer")
    answered = _last_inbound(ticket, identity)
    if answered is None:
        raise ReplyRefused(
            "the customer has not written on a channel we can reply on"
            + (f" as {identity.kind} {identity.value}" if identity else "")
        )
    to = identity or answered.author_identity
    if to is None:
        raise ReplyRefused("the customer's last message has no identity to reply to")
    if to.undeliverable:
        raise ReplyRefused(f"{to.kind} {to.value} is undeliverable ({to.undeliverable_reason}); choose another identity")
    account = answered.account
    visibility = visibility or answered.visibility  # type: ignore[assignment]
    plugin = account_plugin(account)
    refs = [answered.external_id] if answered.external_id else []
    draft = OutboundReply(
        idempotency_key="preview",
        to=_identity_ref(to),
        text=text,
        html=html,
        visibility=visibility,  # type: ignore[arg-type]
        ticket_ref=ticket.pk,
        subject=_reply_subject(ticket),
        thread_key=answered.thread_key,
        in_reply_to=answered.external_id or "",
        references=tuple(refs),
        customer_last_message_at=answered.sent_at,
        automated=automated,
    )
    plugin.check_reply(draft)  # raises ReplyTooLong, CapabilityError, ReplyWindowClosed

    now = timezone.now()
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
        message = Message.objects.create(
            ticket=ticket,
            account=account,
            thread_key=answered.thread_key,
            direction=Message.Direction.OUTBOUND,
            kind=Message.Kind.MESSAGE,
            visibility=visibility,
            author_user=user,
            subject=draft.subject,
            text=text,
            html=sanitize_html(html),
            sent_at=now,
            received_at=now,
            automated=automated,
            state=Message.State.QUEUED,
            metadata={"idempotency_key": uuid.uuid4().hex},
        )
        outbound = OutboundMessage.objects.create(
            message=message, account=account, to_identity=to, in_reply_to=answered.external_id or "", references=refs
        )
        ticket_event_record(
            ticket=ticket, action="reply_queued", actor=TicketEvent.Actor.AGENT, actor_user=user, message=message,
            note=f"{visibility} reply on {account.kind} to {to.kind} {to.value}",
        )
        update = []
        if ticket.first_response_at is None and not automated:
            ticket.first_response_at = now
            update.append("first_response_at")
        if ticket.status == Ticket.Status.NEW:
            ticket.status = Ticket.Status.OPEN
            update.append("status")
        if update:
            ticket.save(update_fields=[*update, "updated_at"])
        from .tasks import send_outbound

        outbound_id = outbound.pk
        transaction.on_commit(lambda: _nudge(send_outbound, outbound_id))
    return message


def note_create(*, ticket: Ticket, user: Any, text: str) -> Message:
    now = timezone.now()
    with transaction.atomic():
        message = Message.objects.create(
            ticket=ticket, direction=Message.Direction.OUTBOUND, kind=Message.Kind.NOTE, visibility="private",
            author_user=user, text=text, sent_at=now, received_at=now, state=Message.State.SENT,
        )
        ticket_event_record(ticket=ticket, action="note_added", actor=TicketEvent.Actor.AGENT, actor_user=user, message=message)
    return message


def _nudge(actor: Any, *args: Any) -> None:
    # The database row is the truth; a broker outage only delays the send until the sweep.
    try:
        actor.send(*args)
    except Exception as exc:  # noqa: BLE001
        import logging

        logging.getLogger(__name__).warning("could not enqueue %s%r (the sweep will): %s", actor.actor_name, args, exc)


def _identity_ref(identity: Identity):  # type: ignore[no-untyped-def]
    from omnidesk.plugins.contract import IdentityKind, IdentityRef

    return IdentityRef(kind=IdentityKind(identity.kind), value=identity.value, namespace=identity.namespace)


def _reply_subject(ticket: Ticket) -> str:
    subject = ticket.subject or f"Your request #{ticket.pk}"
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


def reply_for_outbound(outbound: OutboundMessage) -> OutboundReply:
    """Rebuild the plugin's view of a queued reply from the outbox row."""
    message = outbound.message
    ticket = message.ticket
    answered = Message.objects.filter(account=outbound.account, external_id=outbound.in_reply_to).first() if outbound.in_reply_to else None
    return OutboundReply(
        idempotency_key=message.metadata.get("idempotency_key", f"outbound-{outbound.pk}"),
        to=_identity_ref(outbound.to_identity),
        text=message.text,
        html=message.html,
        visibility=message.visibility,  # type: ignore[arg-type]
        ticket_ref=ticket.pk,
        subject=message.subject,
        thread_key=message.thread_key,
        in_reply_to=outbound.in_reply_to,
        references=tuple(outbound.references),
        customer_last_message_at=answered.sent_at if answered else None,
        automated=message.automated,
    )


__all__ = ["ReplyRefused", "reply_create", "note_create", "reply_for_outbound", "CapabilityError"]
