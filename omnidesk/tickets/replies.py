"""Agents answering: replies go through the outbox; notes stay internal."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from omnidesk import rows
from omnidesk.customers.models import Identity
from omnidesk.broker import nudge
from omnidesk.plugins.contract import Attachment as FileToSend
from omnidesk.plugins.contract import OutboundReply, Visibility
from omnidesk.plugins.contract import Feature
from omnidesk.plugins.errors import CapabilityError, ReplyWindowClosed
from omnidesk.plugins.html import sanitize_html
from omnidesk.plugins.services import account_plugin

from omnidesk.sla.services import sla_agent_response

from .attachments import attachment_content, attachment_refusal, attachment_store
from .audit import ticket_event_record
from .models import Message, OutboundMessage, Ticket, TicketEvent


#: _last_inbound's condition, without and with the identity (alias m: rows.select_sql)
_LAST_INBOUND_WHERE = {
    identified: 'm."ticket_id" = %s AND m."direction" = %s AND m."account_id" IS NOT NULL'
    + (' AND m."author_identity_id" = %s' if identified else "") + ' ORDER BY m."sent_at" DESC, m."id" DESC LIMIT 1'
    for identified in (False, True)
}


class ReplyRefused(Exception):
    """A reply the desk will not queue; the message says why, for the agent."""


class PublicReplyHasPII(ReplyRefused):
    """A public reply that would publish personal data; send it privately, or confirm with allow_public_pii."""


class ReplyConflict(ReplyRefused):
    """Another agent replied since this agent last looked; confirm with confirm_conflict to send anyway."""


def _last_inbound(ticket: Ticket, identity: Identity | None) -> Message | None:
    """The customer's last message on a channel (from `identity`, if given), with its account and identity.

    On PostgreSQL a statement built once per process: every reply reads it, and the ORM compiled it anew
    each time (bench/load.py, docs/benchmarks.md)."""
    if connection.vendor == "postgresql":
        found = rows.select_with(Message, ("account", "author_identity"), _LAST_INBOUND_WHERE[identity is not None],
                                 [ticket.pk, Message.Direction.INBOUND.value, *([identity.pk] if identity else [])])
        return found[0] if found else None
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
    allow_public_pii: bool = False,
    seen_up_to: int | None = None,
    confirm_conflict: bool = False,
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> Message:
    """Queue a reply on the channel and identity of the customer's last message (or the one chosen).

    The plugin's declared capabilities are checked before anything is stored: a reply that is
    too long or on a channel that cannot send is refused with the plugin's typed error.
    A public reply carrying personal data raises PublicReplyHasPII (unless allow_public_pii); when
    `seen_up_to` is given and another agent replied after that message, ReplyConflict (unless confirm_conflict).
    `attachments` are (filename, content type, bytes); a file the channel or the desk refuses refuses the reply.
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
    if visibility == "public" and not allow_public_pii:
        _refuse_public_pii(text)
    if seen_up_to is not None and not confirm_conflict:
        _refuse_conflict(ticket, user, seen_up_to)
    files = tuple(FileToSend(filename=name, content_type=ctype or "application/octet-stream", content=content)
                  for name, ctype, content in attachments)
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
        attachments=files,
        automated=automated,
    )
    try:
        plugin.check_reply(draft)  # raises ReplyTooLong, CapabilityError, ReplyWindowClosed
    except ReplyWindowClosed as exc:
        others = [
            f"{i.kind} {i.value}" for i in ticket.customer.identities.exclude(pk=to.pk).filter(undeliverable=False)
        ]
        hint = f" Reach the customer another way: {', '.join(others)}." if others else ""
        raise ReplyWindowClosed(exc.message + "." + hint) from None
    for f in files:
        refusal = attachment_refusal(content_type=f.content_type, size=len(f.content))
        if refusal:
            raise ReplyRefused(f"the attachment {f.filename!r} cannot be sent: {refusal}")

    now = timezone.now()
    with transaction.atomic():
        # the SLA policies' "channels" condition reads the origin account: joined, not a query of its own
        ticket = Ticket.objects.select_for_update(of=("self",)).select_related("origin_account").get(pk=ticket.pk)
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
        for f in files:
            stored = attachment_store(message=message, filename=f.filename, content_type=f.content_type, content=f.content)
            if isinstance(stored, str):  # checked above; settings changed meanwhile: still never dropped silently
                raise ReplyRefused(f"the attachment {f.filename!r} cannot be sent: {stored}")
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
        if not automated:
            sla_agent_response(ticket=ticket)
        from omnidesk.routing.services import rules_after_reply
        rules_after_reply(ticket=ticket, message=message)
        from .tasks import send_outbound

        outbound_id = outbound.pk
        transaction.on_commit(lambda: nudge(send_outbound, outbound_id))
    return message


DEFAULT_HANDOFF_TEXT = "Sorry about this. We have sent you a private message so we can sort it out."


def ticket_handoff(*, ticket: Ticket, user: Any, private_text: str, public_text: str = "") -> tuple[Message, Message]:
    """Public → private in one action, on the same ticket: a short public acknowledgement, then a
    private message to the same person (tweet → DM, Facebook comment → private reply)."""
    public = (
        Message.objects.filter(ticket=ticket, direction=Message.Direction.INBOUND, visibility="public", account__isnull=False)
        .select_related("account", "author_identity")
        .order_by("-sent_at", "-pk")
        .first()
    )
    if public is None or public.author_identity is None:
        raise ReplyRefused("there is no public message from the customer on this ticket to move to a private channel")
    plugin = account_plugin(public.account)
    if Feature.HANDOFF not in plugin.capabilities.features:
        raise CapabilityError(f"the {plugin.label} channel cannot move a conversation to a private one")
    ack = public_text or getattr(plugin.config, "handoff_template", "") or DEFAULT_HANDOFF_TEXT
    with transaction.atomic():
        acknowledgement = reply_create(ticket=ticket, user=user, text=ack, visibility="public", identity=public.author_identity)
        private = reply_create(
            ticket=ticket, user=user, text=private_text, visibility="private", identity=public.author_identity
        )
        ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
        if ticket.handoff_at is None:
            ticket.handoff_at = timezone.now()
            ticket.save(update_fields=["handoff_at", "updated_at"])
        ticket_event_record(
            ticket=ticket, action="handoff", actor=TicketEvent.Actor.AGENT, actor_user=user, message=private,
            note=f"public {public.account.kind} conversation moved to a private one",
        )
    return acknowledgement, private


CALLBACK_OUTCOMES = ("reached", "voicemail", "no_answer")


def callback_log(
    *, ticket: Ticket, user: Any, outcome: str, notes: str = "", duration_s: int = 0
) -> Message:
    """Replying on a channel that cannot send (phone): the agent logs the call-back they made.

    Reaching the customer or leaving a voicemail counts as the first response; no answer does not.
    """
    if outcome not in CALLBACK_OUTCOMES:
        raise ReplyRefused(f"outcome must be one of {', '.join(CALLBACK_OUTCOMES)}, not {outcome!r}")
    if duration_s < 0:
        raise ReplyRefused("a call cannot last a negative time")
    call = (
        Message.objects.filter(ticket=ticket, direction=Message.Direction.INBOUND, kind=Message.Kind.CALL)
        .select_related("account", "author_identity")
        .order_by("-sent_at", "-pk")
        .first()
    )
    now = timezone.now()
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().get(pk=ticket.pk)
        message = Message.objects.create(
            ticket=ticket, account=call.account if call else None, direction=Message.Direction.OUTBOUND,
            kind=Message.Kind.CALL, visibility="private", author_user=user, text=notes, sent_at=now, received_at=now,
            state=Message.State.SENT,
            call={"direction": "outbound", "duration_s": duration_s, "missed": outcome == "no_answer", "outcome": outcome,
                  "to": call.author_identity.value if call and call.author_identity else ""},
        )
        ticket_event_record(
            ticket=ticket, action="callback_logged", actor=TicketEvent.Actor.AGENT, actor_user=user, message=message,
            new=outcome,
        )
        update = []
        if outcome != "no_answer" and ticket.first_response_at is None:
            ticket.first_response_at = now
            update.append("first_response_at")
        if ticket.status == Ticket.Status.NEW:
            ticket.status = Ticket.Status.OPEN
            update.append("status")
        if update:
            ticket.save(update_fields=[*update, "updated_at"])
        if outcome != "no_answer":
            sla_agent_response(ticket=ticket)
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


def _refuse_public_pii(text: str) -> None:
    from .pii import pii_find, pii_summary

    findings = pii_find(text)
    if findings:
        raise PublicReplyHasPII(
            f"This public reply contains {pii_summary(findings)}. Anyone could read it: "
            "send it as a private reply instead, or remove it."
        )


def _refuse_conflict(ticket: Ticket, user: Any, seen_up_to: int) -> None:
    newer = (
        Message.objects.filter(
            ticket=ticket, direction=Message.Direction.OUTBOUND, kind__in=[Message.Kind.MESSAGE, Message.Kind.CALL],
            pk__gt=seen_up_to, author_user__isnull=False,
        )
        .exclude(author_user=user)
        .select_related("author_user")
        .order_by("-pk")
        .first()
    )
    if newer is not None:
        who = newer.author_user.get_username()  # type: ignore[union-attr]
        what = "logged a call-back" if newer.kind == Message.Kind.CALL else f"sent a {newer.visibility} reply"
        raise ReplyConflict(
            f"{who} {what} on this ticket since you opened it. Read it first, then confirm to send yours anyway."
        )


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
        attachments=tuple(
            FileToSend(filename=a.filename, content_type=a.content_type, content=attachment_content(a),
                       content_id=a.content_id, inline=a.inline)
            for a in message.attachments.order_by("pk")
        ),
        automated=message.automated,
    )


__all__ = [
    "ReplyRefused", "PublicReplyHasPII", "ReplyConflict", "reply_create", "ticket_handoff", "callback_log", "note_create", "reply_for_outbound", "CapabilityError",
]
