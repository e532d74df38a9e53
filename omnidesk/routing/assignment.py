"""Assignment strategies per group, agents' load and presence.

Decisions (documented in docs and tests):
- Automatic strategies only ever pick ONLINE agents of the ticket's group who are under their
  capacity; "load" is the number of tickets assigned to them that are not solved or closed.
- round_robin: the next online agent under capacity after the one who got the group's last
  ticket (by agent id, wrapping around); the pointer is updated under a row lock.
- least_loaded: the fewest open assigned tickets; ties go to the lower agent id.
- skills: agents having every required skill, then least loaded. A ticket's required skills are
  its tags prefixed "skill:" (e.g. "skill:spanish") together with the group's own skills.
- pull: nobody is assigned automatically; agents take tickets with "next ticket".
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q

from omnidesk.tickets.models import Ticket

from .models import Agent, Group

#: statuses that count against an agent's capacity
LOAD_STATUSES = (Ticket.Status.NEW, Ticket.Status.OPEN, Ticket.Status.PENDING, Ticket.Status.ON_HOLD)
SKILL_PREFIX = "skill:"


class PresenceInvalid(ValueError):
    """A presence change refused; the message says why."""


def ticket_skills(ticket: Ticket) -> set[str]:
    return {t[len(SKILL_PREFIX):] for t in (ticket.tags or []) if isinstance(t, str) and t.startswith(SKILL_PREFIX)}


def required_skills(*, ticket: Ticket, group: Group) -> set[str]:
    return ticket_skills(ticket) | set(group.skills or [])


def agents_with_load(*, group: Group, online_only: bool = True) -> list[Agent]:
    qs = Agent.objects.filter(groups=group).select_related("user").filter(user__is_active=True)
    if online_only:
        qs = qs.filter(presence=Agent.Presence.ONLINE)
    return list(
        qs.annotate(load=Count("user__assigned_tickets", filter=Q(user__assigned_tickets__status__in=LOAD_STATUSES)))
        .order_by("pk")
    )


def agent_load(*, user: Any) -> int:
    return Ticket.objects.filter(assignee=user, status__in=LOAD_STATUSES).count()


def assignee_pick(*, group: Group, ticket: Ticket) -> tuple[Any | None, str]:
    """The user the group's strategy picks for `ticket`, or None and why not."""
    strategy = group.strategy
    if strategy == Group.Strategy.PULL:
        return None, f"group {group.name} is pull-only: agents take tickets with next ticket"
    candidates = [a for a in agents_with_load(group=group) if a.load < a.capacity]  # type: ignore[attr-defined]
    if strategy == Group.Strategy.SKILLS:
        needed = required_skills(ticket=ticket, group=group)
        candidates = [a for a in candidates if needed <= set(a.skills or [])]
        if not candidates:
            return None, f"no online agent of {group.name} under capacity has the skills {', '.join(sorted(needed)) or '-'}"
    if not candidates:
        return None, f"no online agent of {group.name} is under capacity"
    if strategy == Group.Strategy.ROUND_ROBIN:
        last = Group.objects.select_for_update().filter(pk=group.pk).values_list("round_robin_last", flat=True).first() or 0
        after = [a for a in candidates if a.pk > last]
        pick = (after or candidates)[0]
        Group.objects.filter(pk=group.pk).update(round_robin_last=pick.pk)
        group.round_robin_last = pick.pk
        return pick.user, "round-robin"
    pick = min(candidates, key=lambda a: (a.load, a.pk))  # type: ignore[attr-defined]
    return pick.user, f"{strategy.replace('_', ' ')}: {pick.load} open"  # type: ignore[attr-defined]


def presence_set(*, user: Any, presence: str) -> Agent:
    """The requesting agent goes online, away or offline."""
    if presence not in Agent.Presence.values:
        raise PresenceInvalid(f"presence must be one of {', '.join(Agent.Presence.values)}, not {presence!r}")
    agent = Agent.objects.filter(user=user).first()
    if agent is None:
        raise PresenceInvalid("your account has no agent profile, so it has no presence; ask a manager to add you")
    if agent.presence != presence:
        agent.presence = presence
        agent.save(update_fields=["presence"])
    return agent
