"""Opening incidents and linking tickets to them; every link is on the ticket's audit trail."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from omnidesk.tickets.models import TicketEvent

from . import topics
from .models import DetectorCursor, Incident, IncidentTicket, RecentMessage

CURSOR = "detector"
OPEN = (Incident.Status.SUGGESTED, Incident.Status.ACTIVE)


class IncidentChangeInvalid(Exception):
    """A change the incident's state does not allow; the message says why."""


@dataclass(frozen=True)
class Found:
    """A customer message that belongs to an incident."""

    message_id: int
    ticket_id: int
    channel: str
    sent_at: datetime
    terms: frozenset[str]


def detector_lock() -> DetectorCursor:
    """The detector's row, locked: detection runs and links made elsewhere never interleave."""
    DetectorCursor.objects.get_or_create(name=CURSOR)
    return DetectorCursor.objects.select_for_update().get(name=CURSOR)


def window_s() -> int:
    return int(settings.OMNIDESK.get("INCIDENT_WINDOW_S", 900))


def incident_links_add(*, incident: Incident, found: Iterable[Found]) -> list[int]:
    """Link the tickets of `found` not linked yet; returns the ticket ids newly linked."""
    first: dict[int, Found] = {}
    for f in found:
        first.setdefault(f.ticket_id, f)
    if not first:
        return []
    linked = set(IncidentTicket.objects.filter(incident=incident, ticket_id__in=list(first)).values_list("ticket_id", flat=True))
    new = [f for t, f in first.items() if t not in linked]
    IncidentTicket.objects.bulk_create(
        [IncidentTicket(incident=incident, ticket_id=f.ticket_id, message_id=f.message_id, channel=f.channel) for f in new]
    )
    TicketEvent.objects.bulk_create(
        [
            TicketEvent(
                ticket_id=f.ticket_id, action="incident_linked", actor=TicketEvent.Actor.SYSTEM, new=incident.pk,
                message_id=f.message_id, note=f"part of incident #{incident.pk}: {incident.title}"[:500],
            )
            for f in new
        ]
    )
    return [f.ticket_id for f in new]


def recent_found(*, since: datetime) -> list[Found]:
    """Customer messages of the last windows, with their terms (the detector keeps them)."""
    rows = RecentMessage.objects.filter(sent_at__gte=since).values_list(
        "message_id", "ticket_id", "channel", "sent_at", "terms"
    )
    return [Found(m, t, c, s, frozenset(terms)) for m, t, c, s, terms in rows]


def recent_since(now: datetime) -> datetime:
    """What a new incident takes at once: the messages of the last two windows."""
    return now - timedelta(seconds=2 * window_s())


def incident_link_recent(*, incident: Incident, now: datetime | None = None, recent: Sequence[Found] | None = None) -> list[int]:
    """A new incident takes the matching messages of the last window(s) at once."""
    now = now or timezone.now()
    since = recent_since(now)
    candidates = recent_found(since=since) if recent is None else [f for f in recent if f.sent_at >= since]
    signature = topics.Signature(incident.signature)
    return incident_links_add(incident=incident, found=[f for f in candidates if signature.matches(f.terms)])


def incidents_link_new(*, incidents: Sequence[Incident], found: Sequence[Found]) -> set[int]:
    """New customer messages join the open incidents they match; returns the incidents that grew."""
    grown = set()
    slack = timedelta(seconds=window_s())
    for incident in incidents:
        signature = topics.Signature(incident.signature)
        mine = [f for f in found if f.sent_at >= incident.opened_at - slack and signature.matches(f.terms)]
        if mine and incident_links_add(incident=incident, found=mine):
            grown.add(incident.pk)
    return grown


def incident_open(
    *, title: str, signature: Sequence[str], source: str, status: str = Incident.Status.ACTIVE, summary: str = "",
    user: Any = None, now: datetime | None = None, recent: Sequence[Found] | None = None, announce: bool = True,
    **fields: Any,
) -> Incident:
    """Open an incident and link the matching tickets of the last window(s).

    `recent`: the messages of the last windows when the caller has them already (the detector).
    """
    if not [t for t in signature if t]:
        raise IncidentChangeInvalid("an incident needs words to recognise its messages by (its title has none)")
    now = now or timezone.now()
    with transaction.atomic():
        detector_lock()
        incident = Incident.objects.create(
            title=title[:200], signature=list(signature), source=source, status=status, summary=summary,
            opened_at=now, created_by=user if getattr(user, "is_authenticated", False) else None, **fields,
        )
        incident_link_recent(incident=incident, now=now, recent=recent)
        if announce:
            changed_on_commit({incident.pk})
    return incident


def signature_of(*texts: str) -> list[str]:
    """The terms of a title (and components), words first: how a manual or signalled incident is recognised."""
    terms: list[str] = []
    for text in texts:
        words = topics.words_of(text)
        terms += words + [f"{a} {b}" for a, b in zip(words, words[1:]) if a != b]
    return list(dict.fromkeys(terms))[: topics.MAX_TERMS]


def incident_status_set(*, incident: Incident, status: str, user: Any = None, note: str = "") -> Incident:
    """suggested → active (confirmed) or dismissed; active → resolved. Audit events on every linked ticket."""
    allowed = {
        Incident.Status.SUGGESTED: {Incident.Status.ACTIVE, Incident.Status.DISMISSED},
        Incident.Status.ACTIVE: {Incident.Status.RESOLVED},
        Incident.Status.RESOLVED: {Incident.Status.ACTIVE},
    }
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if status not in allowed.get(incident.status, set()):
            raise IncidentChangeInvalid(f"incident #{incident.pk} is {incident.status}; it cannot become {status}")
        old = incident.status
        incident.status = status
        incident.resolved_at = timezone.now() if status == Incident.Status.RESOLVED else None
        incident.save(update_fields=["status", "resolved_at", "updated_at"])
        actor_user = user if getattr(user, "is_authenticated", False) else None
        TicketEvent.objects.bulk_create(
            [
                TicketEvent(
                    ticket_id=t, action=f"incident_{status}", actor=TicketEvent.Actor.AGENT if actor_user else TicketEvent.Actor.SYSTEM,
                    actor_user=actor_user, field="incident", old=old, new=status,
                    note=(note or f"incident #{incident.pk}: {incident.title}")[:500],
                )
                for t in incident.links.values_list("ticket_id", flat=True)
            ]
        )
        changed_on_commit({incident.pk})
    return incident


def changed_on_commit(incident_ids: set[int]) -> None:
    from omnidesk.workspace import live

    if incident_ids:
        ids = set(incident_ids)
        transaction.on_commit(lambda: live.incidents_changed(ids))
