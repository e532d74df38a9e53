"""What the workspace pages show, read through the scoped ticket/customer selectors only."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F, OuterRef, QuerySet, Subquery
from django.utils import timezone

from omnidesk.customers.models import Customer, Identity
from omnidesk.customers.selectors import customer_list_for_user
from omnidesk.plugins.contract import Feature
from omnidesk.plugins.models import ChannelAccount
from omnidesk.plugins.registry import UnknownPlugin
from omnidesk.plugins.services import account_plugin
from omnidesk.tickets.models import Message, Ticket
from omnidesk.tickets.selectors import ticket_list_for_user

#: statuses shown in the live queue; a ticket moving out of them leaves the page
QUEUE_STATUSES = (Ticket.Status.NEW, Ticket.Status.OPEN, Ticket.Status.PENDING, Ticket.Status.ON_HOLD)
_PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}


def _last_customer_message() -> QuerySet[Message]:
    return Message.objects.filter(ticket=OuterRef("pk"), direction=Message.Direction.INBOUND).order_by("-sent_at", "-pk")


def queue_rows(*, user: Any, ticket_id: int | None = None) -> QuerySet[Ticket]:
    """The user's open tickets, most urgent first, each with its last customer message's facts."""
    last = _last_customer_message()
    qs = ticket_list_for_user(user=user).filter(status__in=QUEUE_STATUSES)
    if ticket_id is not None:
        qs = qs.filter(pk=ticket_id)
    return qs.annotate(
        last_visibility=Subquery(last.values("visibility")[:1]),
        last_followers=Subquery(last.values("reach_followers")[:1]),
        last_verified=Subquery(last.values("reach_verified")[:1]),
        last_sentiment=Subquery(last.values("sentiment")[:1]),
        last_channel=Subquery(last.values("account__kind")[:1]),
    ).order_by(F("sla_due_at").asc(nulls_last=True), "created_at")[:200]


def ticket_for_user(*, user: Any, ticket_id: int) -> Ticket | None:
    return ticket_list_for_user(user=user).select_related("sla_policy").filter(pk=ticket_id).first()


@dataclass
class HistoryItem:
    message: Message
    this_ticket: bool


def customer_history(*, user: Any, ticket: Ticket) -> list[HistoryItem]:
    """Every message of this customer on tickets the user may see, in time order, across identities and channels."""
    visible = ticket_list_for_user(user=user).filter(customer_id=ticket.customer_id).values("pk")
    messages = (
        Message.objects.filter(ticket_id__in=visible)
        .select_related("author_identity", "author_user", "account", "ticket")
        .prefetch_related("attachments")
        .order_by(F("sent_at").asc(nulls_last=True), "pk")
    )
    return [HistoryItem(m, m.ticket_id == ticket.pk) for m in messages]


@dataclass
class ReplyOption:
    """One identity the agent can answer on, with the limits its channel declares."""

    identity: Identity
    account: ChannelAccount
    label: str
    can_send: bool
    public: bool
    private: bool
    handoff: bool
    attachments: bool
    max_length: int | None
    length_unit: str
    visibility: str
    window_ends: datetime | None
    extended_window_ends: datetime | None
    last_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "identity": self.identity.pk, "kind": self.account.kind, "label": self.label, "can_send": self.can_send,
            "public": self.public, "private": self.private, "handoff": self.handoff, "attachments": self.attachments,
            "max_length": self.max_length, "length_unit": self.length_unit, "visibility": self.visibility,
            "window_ends": self.window_ends.isoformat() if self.window_ends else None,
            "extended_window_ends": self.extended_window_ends.isoformat() if self.extended_window_ends else None,
        }


def reply_options(*, ticket: Ticket) -> list[ReplyOption]:
    """The identities that wrote on this ticket, newest first: the first is the composer's default."""
    inbound = (
        Message.objects.filter(ticket=ticket, direction=Message.Direction.INBOUND, account__isnull=False,
                               author_identity__isnull=False)
        .select_related("account", "author_identity")
        .order_by("-sent_at", "-pk")
    )
    seen: set[int] = set()
    out: list[ReplyOption] = []
    for m in inbound:
        if m.author_identity_id in seen:
            continue
        seen.add(m.author_identity_id)  # type: ignore[arg-type]
        try:
            caps = account_plugin(m.account).capabilities  # type: ignore[arg-type]
        except UnknownPlugin:
            continue
        last = m.sent_at or m.received_at
        ident = m.author_identity
        assert ident is not None and m.account is not None
        out.append(ReplyOption(
            identity=ident, account=m.account,
            label=f"{m.account.kind} · {ident.display_name or ident.value}",
            can_send=caps.can_send, public=Feature.PUBLIC_REPLY in caps.features,
            private=Feature.PRIVATE_REPLY in caps.features, handoff=Feature.HANDOFF in caps.features,
            attachments=Feature.ATTACHMENTS in caps.features, max_length=caps.max_length,
            length_unit=caps.length_unit, visibility=m.visibility,
            window_ends=last + caps.reply_window if caps.reply_window and last else None,
            extended_window_ends=last + caps.extended_reply_window if caps.extended_reply_window and last else None,
            last_at=last,
        ))
    return out


def customers_to_merge(*, user: Any, customer: Customer, query: str) -> list[Customer]:
    """Other customers the user may see whose name or identity matches `query`."""
    query = query.strip()
    if len(query) < 2:
        return []
    qs = customer_list_for_user(user=user).filter(merged_into__isnull=True).exclude(pk=customer.pk)
    by_name = qs.filter(display_name__icontains=query)
    by_identity = qs.filter(identities__value__icontains=query)
    return list((by_name | by_identity).distinct().order_by("display_name", "pk")[:20])


@dataclass
class AccountHealth:
    account: ChannelAccount
    lag_p50_s: float | None
    messages_24h: int


def channel_health(*, now: datetime | None = None) -> list[AccountHealth]:
    """Each channel account with its ingest lag (received − sent, p50 over 24 h), for managers."""
    now = now or timezone.now()
    since = now - timedelta(hours=24)
    out = []
    for account in ChannelAccount.objects.order_by("kind", "slug"):
        pairs = Message.objects.filter(
            account=account, direction=Message.Direction.INBOUND, received_at__gte=since, sent_at__isnull=False
        ).values_list("received_at", "sent_at")[:5000]
        lags = [max(0.0, (r - s).total_seconds()) for r, s in pairs]
        # computed here, not in SQL: SQLite has no percentile_cont
        out.append(AccountHealth(account, statistics.median(lags) if lags else None, len(lags)))
    return out
