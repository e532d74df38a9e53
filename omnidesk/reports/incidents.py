"""The parity report's incident view: how fast each channel's share of an incident was answered.

For every linked ticket the user may see, the response time is measured from the customer message
that linked it to the incident to the first agent answer at or after it: a reply, a logged call-back,
or the call itself when it was answered live. Statistics are the parity report's own (stats.py).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from omnidesk.incidents.models import Incident
from omnidesk.incidents.selectors import incident_links_for_user
from omnidesk.tickets.models import Message

from .stats import percentile, wilson_interval


def _answers(ticket_ids: list[int]) -> dict[int, list[datetime]]:
    """Agent answers per ticket: replies and logged calls written by a person (not notes, not automated)."""
    rows = Message.objects.filter(
        ticket_id__in=ticket_ids, direction=Message.Direction.OUTBOUND, automated=False,
        kind__in=[Message.Kind.MESSAGE, Message.Kind.CALL], author_user__isnull=False,
    ).values_list("ticket_id", "sent_at")
    out: dict[int, list[datetime]] = defaultdict(list)
    for ticket_id, sent_at in rows:
        if sent_at is not None:
            out[ticket_id].append(sent_at)
    return out


def _response_s(link: Any, answers: list[datetime]) -> float | None:
    asked = link.message.sent_at if link.message else link.linked_at
    if link.message and link.message.kind == Message.Kind.CALL and not (link.message.call or {}).get("missed", True):
        return 0.0  # answered live: the customer was served while calling
    later = [a for a in answers if a >= asked]
    return (min(later) - asked).total_seconds() if later else None


def _block(channel: str, times: list[float | None]) -> dict[str, Any]:
    n = len(times)
    answered = [t for t in times if t is not None]
    ci = wilson_interval(len(answered), n)
    return {
        "channel": channel, "tickets": n, "answered": len(answered),
        "share_answered": {"value": len(answered) / n if n else None, "ci_low": ci[0] if ci else None,
                           "ci_high": ci[1] if ci else None, "n": n},
        "response": {"p50": percentile(answered, 0.5), "p90": percentile(answered, 0.9), "n": len(answered)},
    }


def incident_report(*, incident: Incident, user: Any) -> dict[str, Any]:
    """Per channel and pooled, over the linked tickets this user may see."""
    links = list(incident_links_for_user(incident=incident, user=user).select_related("message"))
    answers = _answers([link.ticket_id for link in links])
    per_channel: dict[str, list[float | None]] = defaultdict(list)
    for link in links:
        per_channel[link.channel].append(_response_s(link, answers.get(link.ticket_id, [])))
    everything = [t for times in per_channel.values() for t in times]
    return {
        "incident": {"id": incident.pk, "title": incident.title, "status": incident.status,
                     "opened_at": incident.opened_at.isoformat(),
                     "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None},
        "channels": [_block(c, per_channel[c]) for c in sorted(per_channel)],
        "pooled": _block("all", everything),
    }
