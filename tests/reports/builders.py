"""A hand-built, deterministic multi-channel dataset written with the ORM (exact timestamps)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from omnidesk.customers.models import Customer
from omnidesk.plugins.models import ChannelAccount
from omnidesk.reports.facts import report_facts_save
from omnidesk.tickets.audit import ticket_event_record
from omnidesk.tickets.models import Message, Ticket

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=timezone.utc)
SINCE = "2025-03-01"
UNTIL = "2025-04-01"


@dataclass
class Spec:
    """One ticket: offsets in seconds from its first customer message."""

    channel: str
    group: object = None
    start: datetime = T0
    fr: float | None = None
    frb: float | None = None
    fr_met: bool | None = None
    solved: float | None = None
    res_met: bool | None = None
    reopens: int = 0
    public: bool = False
    handoff: bool = False
    lag: float = 0.0
    #: later exchanges: (customer message offset, agent reply offset or None)
    follow_ups: list[tuple[float, float | None]] = field(default_factory=list)
    transfers: int = 0
    automated_reply: float | None = None
    #: the follow-ups come in on this channel's account (a customer who answers a mail by phone)
    follow_up_channel: str | None = None


_accounts: dict[str, ChannelAccount] = {}


def account(kind: str) -> ChannelAccount:
    return ChannelAccount.objects.get_or_create(slug=f"{kind}-acct", defaults={"kind": kind, "name": kind})[0]


def build(spec: Spec) -> Ticket:
    s = spec.start
    at = lambda off: s + timedelta(seconds=off)  # noqa: E731
    acct = account(spec.channel)
    ticket = Ticket.objects.create(
        origin_account=acct, customer=Customer.objects.create(display_name="c"), group=spec.group,
        customer_first_message_at=s, first_response_at=at(spec.fr) if spec.fr is not None else None,
        first_response_business_s=spec.frb, first_response_met=spec.fr_met,
        solved_at=at(spec.solved) if spec.solved is not None else None, resolution_met=spec.res_met,
        reopen_count=spec.reopens, handoff_at=at((spec.fr or 0) + 1) if spec.handoff else None,
        status=Ticket.Status.SOLVED if spec.solved is not None else Ticket.Status.OPEN,
    )
    vis = "public" if spec.public else "private"

    def msg(direction: str, off: float, *, kind: str = "message", automated: bool = False, lag: float = 0.0,
            on: ChannelAccount = acct) -> None:
        Message.objects.create(
            ticket=ticket, account=on, direction=direction, kind=kind, visibility=vis, sent_at=at(off),
            received_at=at(off + lag), automated=automated, state="received" if direction == "in" else "sent",
        )

    msg("in", 0, lag=spec.lag)
    if spec.fr is not None:
        msg("out", spec.fr)
    if spec.automated_reply is not None:
        msg("out", spec.automated_reply, automated=True)
    for customer_off, reply_off in spec.follow_ups:
        msg("in", customer_off, lag=spec.lag, on=account(spec.follow_up_channel or spec.channel))
        if reply_off is not None:
            msg("out", reply_off)
    for i in range(spec.transfers):
        ticket_event_record(ticket=ticket, actor="agent", action="assignee_changed", field="assignee", old=i + 1, new=i + 2)
    # a first assignment and a note: neither is a transfer nor a response
    ticket_event_record(ticket=ticket, actor="agent", action="assignee_changed", field="assignee", old=None, new=9)
    if spec.fr is not None:
        Message.objects.create(ticket=ticket, direction="out", kind="note", visibility="private", sent_at=at(1),
                               received_at=at(1), state="sent")
    report_facts_save(ticket_id=ticket.pk)  # written behind the services' back: the facts computed as they would be
    return ticket
