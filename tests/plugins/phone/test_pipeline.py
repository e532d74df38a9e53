"""Calls through the real webhook view and the core pipeline: tickets, call-backs, threading per number."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from omnidesk.customers.models import Identity
from omnidesk.inbox.services import inbound_events_apply
from omnidesk.tickets.models import Message, Ticket
from omnidesk.tickets.replies import callback_log

pytestmark = pytest.mark.django_db

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def hangup(call_id: str, *, answered: bool, caller: str = "07700 900123", minutes_ago: int = 30, **extra: Any) -> dict:
    at = NOW - timedelta(minutes=minutes_ago)
    return {"event": "hangup", "call_id": call_id, "from": caller, "to": "0161 496 0000", "direction": "in",
            "at": at.isoformat(), "started_at": (at - timedelta(seconds=40)).isoformat(),
            "duration_s": 25 if answered else 0, "answered": answered, **extra}


def deliver(post_cti: Any, payload: dict) -> None:
    answer = post_cti(payload)
    assert answer.status_code == 200, answer.content
    inbound_events_apply()


def test_missed_call_then_callback_then_answered_call_join_one_ticket(post_cti, phone_account, django_user_model) -> None:  # type: ignore[no-untyped-def]
    deliver(post_cti, {"event": "newCall", "call_id": "c-1", "from": "07700 900123", "to": "0161 496 0000",
                       "at": (NOW - timedelta(minutes=31)).isoformat()})
    assert not Ticket.objects.exists()  # newCall is recorded, not a ticket
    deliver(post_cti, hangup("c-1", answered=False))
    ticket = Ticket.objects.get()
    call = ticket.messages.get()
    assert call.kind == Message.Kind.CALL and call.event_type == "missed_call"
    assert call.metadata["needs_callback"] == "true" and call.call["missed"] is True
    assert ticket.first_response_at is None
    assert ticket.customer_first_message_at == NOW - timedelta(minutes=30, seconds=40)  # SLA from the call's start
    assert Identity.objects.get(customer=ticket.customer).value == "+447700900123"

    agent = django_user_model.objects.create_user(username="agent-1")
    callback_log(ticket=ticket, user=agent, outcome="no_answer", notes="rang out")
    ticket.refresh_from_db()
    assert ticket.first_response_at is None
    callback_log(ticket=ticket, user=agent, outcome="reached", notes="sorted", duration_s=95)
    ticket.refresh_from_db()
    assert ticket.first_response_at is not None

    deliver(post_cti, hangup("c-2", answered=True, caller="+447700900123", minutes_ago=5, agent="202"))
    assert Ticket.objects.count() == 1
    answered = ticket.messages.get(external_id="c-2")
    assert answered.event_type == "call" and answered.call["answered_by"] == "202"


def test_internal_outbound_and_anonymous_calls_make_no_ticket(post_cti, phone_account) -> None:  # type: ignore[no-untyped-def]
    deliver(post_cti, hangup("i-1", answered=True, caller="201", to="202") | {"to": "202"})
    deliver(post_cti, hangup("o-1", answered=True, caller="201") | {"direction": "out", "to": "07700900123"})
    deliver(post_cti, hangup("a-1", answered=False, caller="anonymous"))
    assert not Ticket.objects.exists()
    from omnidesk.inbox.models import InboundEvent

    assert sorted(e.status for e in InboundEvent.objects.all()) == ["ignored"] * 3


def test_solved_ticket_reopens_and_closed_ticket_gets_a_follow_up(post_cti, phone_account) -> None:  # type: ignore[no-untyped-def]
    deliver(post_cti, hangup("s-1", answered=False, minutes_ago=50))
    first = Ticket.objects.get()
    Ticket.objects.filter(pk=first.pk).update(status=Ticket.Status.SOLVED)
    deliver(post_cti, hangup("s-2", answered=False, minutes_ago=40))
    first.refresh_from_db()
    assert first.status == Ticket.Status.OPEN and first.reopen_count == 1 and Ticket.objects.count() == 1
    Ticket.objects.filter(pk=first.pk).update(status=Ticket.Status.CLOSED)
    deliver(post_cti, hangup("s-3", answered=True, minutes_ago=30))
    follow_up = Ticket.objects.exclude(pk=first.pk).get()
    assert follow_up.customer_id == first.customer_id and follow_up.messages.get().external_id == "s-3"


def test_redelivered_hangup_is_one_message_and_a_bad_signature_stores_nothing(post_cti, phone_account) -> None:  # type: ignore[no-untyped-def]
    payload = hangup("r-1", answered=False)
    deliver(post_cti, payload)
    assert post_cti(payload).json()["duplicate"] is True
    assert post_cti({**payload, "call_id": "r-2"}, secret="wrong").status_code == 401
    inbound_events_apply()
    assert Message.objects.filter(external_id__in=["r-1", "r-2"]).count() == 1


def test_demo_account_and_events(phone_account) -> None:  # type: ignore[no-untyped-def]
    from channels_plugins.phone.adapter import PhoneChannel
    from omnidesk.plugins.contract import RawEvent

    from .helpers import make_plugin

    demo = PhoneChannel.demo_account()
    plugin = make_plugin(demo.config, secret=demo.secrets["secret"])
    events = plugin.demo_events()
    assert len(events) == 4 and all(plugin.verify(e) is None for e in events)  # type: ignore[arg-type]
    kinds = [type(i).__name__ + ":" + getattr(i, "event_type", "") for e in events
             for i in plugin.parse(RawEvent(body=e.body, headers=dict(e.headers)))]
    assert kinds == ["Ignored:call_event", "InboundMessage:missed_call", "InboundMessage:call", "Ignored:internal"]
