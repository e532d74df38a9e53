"""Rules through the real ingest: the shipped defaults and the actions, the same for every channel."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from omnidesk.plugins.contract import CallDetails
from omnidesk.routing.models import Rule
from omnidesk.routing.services import RuleInvalid, rule_save
from omnidesk.sla.models import Policy
from omnidesk.sla.services import sla_sweep
from omnidesk.tickets.models import Message, TicketEvent
from omnidesk.tickets.replies import reply_create

from .conftest import NOW, ingest

pytestmark = pytest.mark.django_db


def rule_events(ticket):
    return list(TicketEvent.objects.filter(ticket=ticket, actor="rule").values_list("action", "note"))


def test_the_default_rules_are_shipped_and_valid(db):
    names = set(Rule.objects.values_list("name", flat=True))
    assert {"Reach: a public message to a large audience", "Negative sentiment", "Falling sentiment: escalate",
            "The ignored complaint", "Missed call: call the customer back"} <= names
    for rule in Rule.objects.all():
        rule_save(rule=rule, name=rule.name)  # every shipped rule passes the same validation as a manager's


def test_a_high_reach_public_message_gets_high_priority(api_account):
    ticket, _ = ingest(api_account, "tw-1", followers=25_000, public=True, text="Still no parcel @acme")
    assert ticket.priority == "high"
    action, note = rule_events(ticket)[0]
    assert action == "priority_changed" and "Reach" in note
    quiet, _ = ingest(api_account, "tw-2", author="u-2", email="bob@example.com", followers=40, public=True)
    assert quiet.priority == "normal"
    verified, _ = ingest(api_account, "tw-3", author="u-3", email="cy@example.com", followers=40, verified=True, public=True)
    assert verified.priority == "high"
    private, _ = ingest(api_account, "dm-1", author="u-4", email="di@example.com", followers=90_000)
    assert private.priority == "normal"  # reach matters in public


def test_a_second_unanswered_message_on_another_channel_is_a_repeat_complaint(api_account, billing_account):
    first, _ = ingest(api_account, "m-1", sent_at=NOW - timedelta(hours=5))
    assert "repeat-complaint" not in first.tags
    second, _ = ingest(billing_account, "b-1", sent_at=NOW - timedelta(hours=1), text="Hello?? Nobody answers.")
    assert second.pk != first.pk and second.customer_id == first.customer_id
    assert "repeat-complaint" in second.tags and "escalated" in second.tags
    assert second.priority == "high"
    assert ("escalated", "rule The ignored complaint") in rule_events(second)
    first.refresh_from_db()
    assert "repeat-complaint" not in first.tags


def test_an_answered_message_is_not_a_repeat_complaint(sending_account, billing_account, agent):
    first, _ = ingest(sending_account, "m-1", sent_at=NOW - timedelta(hours=5))
    reply_create(ticket=first, user=agent, text="We are on it")
    second, _ = ingest(billing_account, "b-1", sent_at=NOW - timedelta(hours=1))
    assert "repeat-complaint" not in second.tags


def test_automated_messages_are_never_flagged_or_acknowledged(sending_account, only_rules):
    only_rules(name="ack", actions=[{"type": "auto_ack", "value": "Thanks, we got it."}])
    only_rules(name="repeat", conditions=[{"field": "repeat_complaint", "op": "eq", "value": True}],
               actions=[{"type": "add_tags", "value": ["repeat-complaint"]}])
    ticket, _ = ingest(sending_account, "ooo-1", automated=True, text="I am out of office")
    assert not Message.objects.filter(ticket=ticket, direction="out").exists()
    assert ("auto_ack_skipped", "rule ack: the customer's message is automated (auto-reply, bounce); never acknowledged") \
        in rule_events(ticket)
    human, _ = ingest(sending_account, "m-1", author="u-9", email="eve@example.com", thread="t-9")
    ingest(sending_account, "m-2", author="u-9", email="eve@example.com", thread="t-9", sent_at=NOW)
    acks = Message.objects.filter(ticket=human, direction="out", automated=True)
    assert acks.count() == 1  # at most once per ticket
    human.refresh_from_db()
    assert human.first_response_at is None  # an acknowledgement is not a response


def test_no_acknowledgement_where_the_channel_cannot_send_and_missed_calls_need_a_call_back(db, only_rules):
    from omnidesk.plugins.services import channel_account_save

    phone = channel_account_save(kind="phone", slug="pbx", name="PBX", config={})
    only_rules(name="ack", actions=[{"type": "auto_ack", "value": "Thanks"}])
    ticket, _ = ingest(phone, "call-1", metadata=(("needs_callback", "true"),),
                       call=CallDetails(direction="inbound", missed=True))
    assert not Message.objects.filter(ticket=ticket, direction="out").exists()
    assert rule_events(ticket)[0][0] == "auto_ack_skipped"


def test_the_shipped_missed_call_rule(db):
    from omnidesk.plugins.services import channel_account_save

    phone = channel_account_save(kind="phone", slug="pbx", name="PBX", config={})
    ticket, message = ingest(phone, "call-1", metadata=(("needs_callback", "true"),),
                             call=CallDetails(direction="inbound", missed=True), text="Missed call from +44…")
    assert "needs-callback" in ticket.tags and message.sentiment is None  # calls are not scored


def test_stop_processing_is_honoured(api_account, only_rules):
    only_rules(name="refunds", position=1, conditions=[{"field": "text", "op": "regex", "value": r"\brefund"}],
               actions=[{"type": "add_tags", "value": ["refund"]}], stop_processing=True)
    only_rules(name="everything", position=2, actions=[{"type": "add_tags", "value": ["seen"]}])
    refund, _ = ingest(api_account, "m-1", text="I want a REFUND")
    other, _ = ingest(api_account, "m-2", author="u-2", email="b@example.com", text="Where is it?")
    assert refund.tags == ["refund"] and other.tags == ["seen"]


def test_sentiment_is_stored_and_negative_falling_customers_are_escalated(api_account):
    _, happy = ingest(api_account, "m-1", text="Thanks, love the product!", sent_at=NOW - timedelta(hours=3), thread="t")
    assert happy.sentiment > 0.5
    ticket, angry = ingest(api_account, "m-2", text="This is terrible, worst service ever. I hate it!",
                           sent_at=NOW - timedelta(hours=1), thread="t")
    assert angry.sentiment <= -0.5
    assert {"negative", "escalated"} <= set(ticket.tags)
    assert any(a == "escalated" and "Falling" in n for a, n in rule_events(ticket))


def test_set_sla_policy_and_notify_and_group(api_account, billing, only_rules):
    vip = Policy.objects.create(name="VIP", position=1, targets={"normal": {"first_response": 10}})
    only_rules(name="vip", conditions=[{"field": "text", "op": "contains", "value": "vip"}],
               actions=[{"type": "set_sla_policy", "value": "VIP"}, {"type": "notify", "value": "a VIP wrote"},
                        {"type": "set_group", "value": "Billing"}])
    ticket, _ = ingest(api_account, "m-1", text="VIP customer here", sent_at=NOW)
    ticket.refresh_from_db()
    assert ticket.sla_policy_override_id == vip.pk and ticket.sla_policy_id == vip.pk
    assert ticket.group_id == billing.pk
    actions = [a for a, _ in rule_events(ticket)]
    assert actions == ["sla_policy_set", "notified", "group_changed"]
    assert TicketEvent.objects.get(ticket=ticket, action="group_changed").field == "group"


def test_rules_run_on_agent_replies_and_sla_breaches(sending_account, agent, only_rules):
    only_rules(name="replied", events=["agent_reply"], actions=[{"type": "add_tags", "value": ["replied"]}])
    only_rules(name="late", events=["sla_breach"], actions=[{"type": "escalate"}])
    ticket, _ = ingest(sending_account, "m-1", sent_at=NOW)
    reply_create(ticket=ticket, user=agent, text="Looking")
    ticket.refresh_from_db()
    assert "replied" in ticket.tags
    fresh, _ = ingest(sending_account, "m-2", author="u-2", email="x@example.com", sent_at=NOW)
    sla_sweep(now=timezone.now() + timedelta(days=5))
    fresh.refresh_from_db()
    assert fresh.priority == "high" and "escalated" in fresh.tags


def test_validation_names_every_problem(db):
    with pytest.raises(RuleInvalid) as caught:
        rule_save(name="bad", events=["customer_message"],
                  conditions=[{"field": "text", "op": "regex", "value": "(oops"}],
                  actions=[{"type": "set_group", "value": "Nowhere"}, {"type": "set_sla_policy", "value": "Nope"}])
    text = "\n".join(caught.value.problems)
    assert "invalid regular expression '(oops'" in text
    assert "no group named 'Nowhere'" in text and "no SLA policy named 'Nope'" in text


def test_a_bulk_update_of_rules_is_seen_by_the_next_message(api_account):
    """`.update()` skips auto_now; the rule cache must still notice (a manager's bulk deactivate)."""
    ticket, _ = ingest(api_account, "tw-1", followers=25_000, public=True, text="Still no parcel @acme")
    assert ticket.priority == "high"
    Rule.objects.filter(name__startswith="Reach").update(active=False)
    later, _ = ingest(api_account, "tw-2", author="u-2", email="bob@example.com", followers=25_000, public=True)
    assert later.priority == "normal"
