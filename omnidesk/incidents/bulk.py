"""Answer together: one text to every linked ticket, each on the customer's own channel, within its limits.

Every reply goes through the ordinary reply path (reply_create / ticket_handoff: outbox, SLA, audit),
so each ticket keeps its own history. A BulkDelivery row per (bulk reply, ticket), written in the same
transaction as the reply, makes re-running a bulk reply send nothing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from omnidesk.broker import nudge
from omnidesk.plugins.contract import Feature, ReplyWindowClosed
from omnidesk.plugins.errors import PluginError
from omnidesk.plugins.services import account_plugin
from omnidesk.tickets.audit import ticket_event_record
from omnidesk.tickets.models import Message, Ticket, TicketEvent
from omnidesk.tickets.replies import ReplyRefused, note_create, reply_create, ticket_handoff

from .linking import IncidentChangeInvalid, changed_on_commit, incident_status_set
from .models import BulkDelivery, BulkReply, Incident

MAX_TEXT = 10_000
ELLIPSIS = "…"


@dataclass
class BulkReport:
    outcomes: dict[str, int] = field(default_factory=dict)
    already: int = 0


def shorten(text: str, *, measure: Callable[[str], int], limit: int) -> str:
    """The longest start of `text` ending at a word boundary, with an ellipsis, that the channel accepts."""
    if measure(text) <= limit:
        return text
    words = text.split()
    lo, hi = 0, len(words)
    while lo < hi:  # the most words that fit
        mid = (lo + hi + 1) // 2
        if measure(" ".join(words[:mid]) + ELLIPSIS) <= limit:
            lo = mid
        else:
            hi = mid - 1
    if lo:
        return " ".join(words[:lo]) + ELLIPSIS
    cut = text
    while cut and measure(cut + ELLIPSIS) > limit:
        cut = cut[:-1]
    return cut + ELLIPSIS


def bulk_reply_create(
    *, incident: Incident, user: Any, text: str, public_text: str = "", kind: str = BulkReply.Kind.UPDATE
) -> tuple[BulkReply, bool]:
    """Record a bulk reply (the same text again is the same bulk reply) and have a worker deliver it."""
    text, public_text = (text or "").strip(), (public_text or "").strip()
    if not text:
        raise IncidentChangeInvalid("the bulk reply has no text")
    if len(text) > MAX_TEXT or len(public_text) > MAX_TEXT:
        raise IncidentChangeInvalid(f"a bulk reply is at most {MAX_TEXT} characters")
    if kind not in BulkReply.Kind.values:
        raise IncidentChangeInvalid(f"kind must be one of {', '.join(BulkReply.Kind.values)}, not {kind!r}")
    wanted = Incident.Status.ACTIVE if kind == BulkReply.Kind.UPDATE else Incident.Status.RESOLVED
    if incident.status != wanted:
        raise IncidentChangeInvalid(
            f"incident #{incident.pk} is {incident.status}: "
            + ("confirm it before answering its tickets" if kind == BulkReply.Kind.UPDATE else "resolve it before the follow-up")
        )
    key = hashlib.sha256("\0".join([kind, text, public_text]).encode()).hexdigest()
    with transaction.atomic():
        bulk, created = BulkReply.objects.get_or_create(
            incident=incident, key=key,
            defaults={"kind": kind, "text": text, "public_text": public_text, "created_by": user},
        )
        if not created and bulk.finished_at is not None:
            BulkReply.objects.filter(pk=bulk.pk).update(finished_at=None)  # tickets linked since get it too
        bulk_id = bulk.pk
        transaction.on_commit(lambda: _enqueue(bulk_id))
    return bulk, created


def incident_resolve(*, incident: Incident, user: Any, follow_up: bool = True, follow_up_text: str = "") -> BulkReply | None:
    """Resolve, then (by default) send every linked ticket the follow-up."""
    incident = incident_status_set(incident=incident, status=Incident.Status.RESOLVED, user=user)
    if not follow_up:
        return None
    text = follow_up_text or settings.OMNIDESK.get("INCIDENT_FOLLOW_UP_TEXT", "")
    bulk, _ = bulk_reply_create(incident=incident, user=user, text=text, kind=BulkReply.Kind.FOLLOW_UP)
    return bulk


def _enqueue(bulk_id: int) -> None:
    from .tasks import deliver_bulk_reply

    nudge(deliver_bulk_reply, bulk_id)


def bulk_reply_deliver(*, bulk_id: int) -> BulkReport:
    """Deliver to every linked ticket that has not had this bulk reply; safe to run again, or twice at once."""
    bulk = BulkReply.objects.select_related("incident", "created_by").get(pk=bulk_id)
    report = BulkReport()
    ticket_ids = list(bulk.incident.links.order_by("ticket_id").values_list("ticket_id", flat=True))
    done = set(bulk.deliveries.values_list("ticket_id", flat=True))
    for ticket_id in ticket_ids:
        if ticket_id in done:
            report.already += 1
            continue
        outcome = _deliver_one(bulk, ticket_id)
        if outcome is None:
            report.already += 1
        else:
            report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
    BulkReply.objects.filter(pk=bulk.pk).update(finished_at=timezone.now())
    changed_on_commit({bulk.incident_id})  # the banners' "answered" counts moved
    return report


def bulk_reply_pending_ids() -> list[int]:
    """Bulk replies a worker has not finished (broker down, worker killed): the detector's run re-enqueues them."""
    return list(BulkReply.objects.filter(finished_at__isnull=True).values_list("pk", flat=True)[:100])


def _deliver_one(bulk: BulkReply, ticket_id: int) -> str | None:
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update().select_related("customer").get(pk=ticket_id)
        if BulkDelivery.objects.filter(bulk=bulk, ticket=ticket).exists():
            return None  # another worker got here first
        try:
            with transaction.atomic():
                outcome, channel, message, note = _route(bulk, ticket)
        except ReplyWindowClosed as exc:
            outcome, channel, message, note = BulkDelivery.Outcome.SKIPPED, _channel(ticket), None, str(exc)
        except (ReplyRefused, PluginError) as exc:
            outcome, channel, message, note = BulkDelivery.Outcome.FAILED, _channel(ticket), None, str(exc)
        BulkDelivery.objects.create(bulk=bulk, ticket=ticket, channel=channel, outcome=outcome, message=message, note=note[:500])
        ticket_event_record(
            ticket=ticket, action="incident_bulk_reply", actor=TicketEvent.Actor.AGENT, actor_user=bulk.created_by,
            message=message, new=outcome,
            note=f"{bulk.get_kind_display()} of incident #{bulk.incident_id}: {outcome}" + (f" ({note})" if note else ""),
        )
    return outcome


def _last_inbound(ticket: Ticket) -> Message | None:
    return (
        Message.objects.filter(ticket=ticket, direction=Message.Direction.INBOUND, account__isnull=False)
        .select_related("account").order_by("-sent_at", "-pk").first()
    )


def _channel(ticket: Ticket) -> str:
    last = _last_inbound(ticket)
    return last.account.kind if last and last.account else ""


def _route(bulk: BulkReply, ticket: Ticket) -> tuple[str, str, Message | None, str]:
    """Which reply this ticket gets on its channel: (outcome, channel, message, note)."""
    last = _last_inbound(ticket)
    if last is None:
        raise ReplyRefused("the customer has not written on a channel we can reply on")
    user, text = bulk.created_by, bulk.text
    plugin = account_plugin(last.account)
    caps = plugin.capabilities
    channel = last.account.kind
    if not caps.can_send:
        note = note_create(ticket=ticket, user=user, text=f"Call back about incident #{bulk.incident_id}: {text}")
        ticket_event_record(
            ticket=ticket, action="callback_task", actor=TicketEvent.Actor.AGENT, actor_user=user, message=note,
            note=f"call the customer back with the {bulk.get_kind_display().lower()} of incident #{bulk.incident_id}",
        )
        return BulkDelivery.Outcome.CALLBACK, channel, note, f"{plugin.label} cannot send: call-back task"
    limit = caps.max_length
    if last.visibility == "public" and limit is not None and plugin.measure(text) > limit:
        public = bulk.public_text if bulk.public_text and plugin.measure(bulk.public_text) <= limit else ""
        if not public and Feature.HANDOFF in caps.features and Feature.PRIVATE_REPLY in caps.features:
            _ack, private = ticket_handoff(ticket=ticket, user=user, private_text=text)
            return BulkDelivery.Outcome.HANDOFF, channel, private, "too long to post publicly: sent privately"
        short = public or shorten(text, measure=plugin.measure, limit=limit)
        message = reply_create(ticket=ticket, user=user, text=short, visibility="public")
        return BulkDelivery.Outcome.SHORTENED, channel, message, ""
    message = reply_create(ticket=ticket, user=user, text=text)
    return BulkDelivery.Outcome.QUEUED, channel, message, ""
