"""A ticket and the customer's message → the normalized facts routing rules read.

Facts that cost a query (the customer's sentiment trend, an earlier unanswered message, the
group's name, the customer's last message for SLA events) are computed only when a rule asks.

Which message the facts describe: for ticket_created / customer_message, the message that
arrived; for agent_reply, sla_warning and sla_breach, the customer's latest inbound message on
the ticket (rules are about the customer, whatever the event).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from datetime import datetime
from typing import Any

from django.utils import timezone

from omnidesk.tickets.models import Message, Ticket, TicketEvent

from .sentiment import TREND_WINDOW, sentiment_trend

#: tickets whose unanswered message makes a new one a "repeat complaint". Pending and on hold mean
#: the desk is waiting on the customer or a third party, solved/closed that an agent decided it
#: was done: in none of them is the customer being ignored.
UNANSWERED_STATUSES = (Ticket.Status.NEW, Ticket.Status.OPEN)


class Facts(MutableMapping[str, Any]):
    """A mapping whose values are loaded on first read; actions may overwrite them."""

    def __init__(self, loaders: dict[str, Callable[[], Any]]) -> None:
        self._loaders = loaders
        self._values: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._values:
            if key not in self._loaders:
                raise KeyError(key)
            self._values[key] = self._loaders[key]()
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._values[key] = value

    def __delitem__(self, key: str) -> None:
        self._values.pop(key, None)

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self._loaders), **self._values})

    def __len__(self) -> int:
        return len(set(self._loaders) | set(self._values))

    def loaded(self) -> dict[str, Any]:
        """Every fact, loading the missing ones (dry-runs show them all)."""
        return {key: self[key] for key in self}


def customer_message_for(ticket: Ticket) -> Message | None:
    return (
        Message.objects.filter(ticket=ticket, direction=Message.Direction.INBOUND)
        .select_related("account")
        .order_by("-sent_at", "-pk")
        .first()
    )


def ticket_facts(*, ticket: Ticket, message: Message | None = None, now: datetime | None = None) -> Facts:
    """Facts of `ticket` and the customer's `message` (None: the latest inbound one, looked up lazily)."""
    now = now or timezone.now()
    holder: dict[str, Message | None] = {}

    def msg() -> Message | None:
        if "m" not in holder:
            holder["m"] = message if message is not None else customer_message_for(ticket)
        return holder["m"]

    def channel() -> str:
        m = msg()
        if m is not None and m.account_id:
            return m.account.kind
        return ticket.origin_account.kind if ticket.origin_account_id else ""

    def repeat_complaint() -> bool:
        m = msg()
        if m is None or m.automated or m.direction != Message.Direction.INBOUND or m.sent_at is None:
            return False
        # An earlier customer message in ANY channel still waiting for an answer: the SLA engine's
        # next-response clock (awaiting_response_since) starts at the first unanswered customer
        # message of a ticket and stops at an agent's answer, so it is exactly "unanswered since".
        hits = set(
            Ticket.objects.filter(
                customer_id=ticket.customer_id, status__in=UNANSWERED_STATUSES, awaiting_response_since__lt=m.sent_at
            ).values_list("pk", flat=True)[:2]
        )
        if hits - {ticket.pk}:
            return True
        # This ticket only counts if the desk still owed an answer when the message came: one that
        # the message itself reopened (pending, on hold, solved) was not being ignored.
        return bool(hits) and not TicketEvent.objects.filter(ticket=ticket, message=m, field="status").exists()

    def scores() -> list[float]:
        latest = list(
            Message.objects.filter(
                ticket__customer_id=ticket.customer_id, direction=Message.Direction.INBOUND, sentiment__isnull=False
            )
            .order_by("-sent_at", "-pk")
            .values_list("sentiment", flat=True)[:TREND_WINDOW]
        )
        return latest[::-1]

    def trend() -> Any:
        if "t" not in holder:
            holder["t"] = sentiment_trend(scores())  # type: ignore[assignment]
        return holder["t"]

    def group() -> str | None:
        if not ticket.group_id:
            return None
        from .models import Group

        return Group.objects.filter(pk=ticket.group_id).values_list("name", flat=True).first()

    def business_hours() -> bool:
        from omnidesk.sla.services import business_calendar

        policy = ticket.sla_policy if ticket.sla_policy_id else None
        return business_calendar(policy.calendar if policy else None).is_open(now)

    def field(name: str) -> Callable[[], Any]:
        return lambda: getattr(msg(), name, None)

    return Facts({
        "channel": channel,
        "visibility": field("visibility"),
        "text": lambda: (msg().text if msg() is not None else "") or "",  # type: ignore[union-attr]
        "followers": field("reach_followers"),
        "verified": field("reach_verified"),
        "automated": lambda: bool(getattr(msg(), "automated", False)),
        "message_kind": field("kind"),
        "sentiment": field("sentiment"),
        "sentiment_trend": lambda: trend().direction,
        "sentiment_slope": lambda: trend().slope,
        "repeat_complaint": repeat_complaint,
        "customer_tags": lambda: list(ticket.customer.tags or []) if ticket.customer_id else [],
        "tags": lambda: list(ticket.tags or []),
        "priority": lambda: ticket.priority,
        "status": lambda: ticket.status,
        "group": group,
        "within_business_hours": business_hours,
        "metadata": lambda: dict(getattr(msg(), "metadata", None) or {}),
    })
