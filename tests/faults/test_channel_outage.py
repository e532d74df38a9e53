"""A channel API answering 5xx, then 429, for a while: the outbox backs off and drains, exactly once."""

from __future__ import annotations

import time

import pytest
from django.db.models import Max

from omnidesk.inbox.services import inbound_event_store, inbound_events_apply
from omnidesk.plugins.contract import RawEvent
from omnidesk.plugins.models import ChannelAccount
from omnidesk.tickets.models import OutboundMessage
from tests.services.procs import real_broker, subprocess_database_url, wait_until

from .stack import PROCESS_START_S, Stack
from .traffic import BUILDERS, Tally, desk_accounts, ledger, mail, replies_make

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

KINDS = ("api", "twitter", "facebook", "email")
PER_KIND = 5
FAULT_S = 4.0  # 503s for this long, then 429s for as long again


def ingest(kind: str, count: int) -> set[str]:
    """Customer messages stored and applied in this process: this test is about what goes out."""
    account = ChannelAccount.objects.get(kind=kind)
    ids = set()
    for n in range(count):
        if kind == "email":
            ext, body = mail(n, "outage")
        else:
            hook = BUILDERS[kind](n, "outage")
            ext, body = hook.external_id, hook.body
        inbound_event_store(account=account, raw=RawEvent(body=body))
        ids.add(ext)
    while inbound_events_apply().applied:
        pass
    return ids


def test_outbox_backs_off_through_5xx_and_429_and_sends_each_reply_once(postgres, broker_url, platforms, smtp, agent):
    desk_accounts(platforms_url=platforms.url, smtp_port=smtp.port)
    sent = {kind: ingest(kind, PER_KIND + 1) for kind in KINDS}
    real_broker(broker_url).close()  # emptied of what an earlier run left
    stack = Stack(subprocess_database_url(), broker_url)
    try:
        stack.worker()
        stack.scheduler()
        warm = replies_make(agent=agent, kinds=("api",), per_kind=1, first=1000)
        wait_until(lambda: platforms.deliveries.markers() >= set(warm) or not all(p.alive for p in stack.procs.values()),
                   timeout=PROCESS_START_S, what="the first reply to go out")
        stack.assert_alive()

        platforms.fail(503, FAULT_S)
        making = time.monotonic()
        replies = replies_make(agent=agent, kinds=KINDS, per_kind=PER_KIND)
        made_in = time.monotonic() - making
        assert len(replies) == len(KINDS) * PER_KIND
        # Counted from the last reply queued: on a loaded machine making them takes seconds, and
        # the last channel's replies must meet the 5xx too.
        platforms.fault.until = time.monotonic() + FAULT_S
        time.sleep(FAULT_S)
        refused_5xx = platforms.fault.refused
        platforms.fail(429, FAULT_S)
        healthy_at = time.monotonic() + FAULT_S
        wait_until(lambda: platforms.deliveries.markers() >= set(replies) | set(warm), timeout=90,
                   what="every reply to be delivered after the outage", every=0.2)
        drained_after = time.monotonic() - healthy_at
        time.sleep(1.5)  # anything sent twice would arrive now: a redelivered message, a second sweep
        stack.assert_alive()
    finally:
        stack.close()

    refused_429 = platforms.fault.refused
    attempts = OutboundMessage.objects.aggregate(most=Max("attempts"))["most"]
    print(f"replies made in {made_in:.1f}s; refused with 5xx {dict(refused_5xx)}, with 429 {dict(refused_429)}; "
          f"most attempts of one reply {attempts}; drained {drained_after:.1f}s after the channel recovered")
    lost, duplicated = ledger("channel 5xx/429", sent=sent, tally=Tally.read(subprocess_database_url()),
                              replies={**replies, **warm}, deliveries=platforms.deliveries)
    assert lost == 0 and duplicated == 0
    assert set(refused_5xx) == set(KINDS), f"every channel must have met the 5xx: {refused_5xx}"
    assert sum(refused_429.values()) > 0, "no send met the 429s"
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {"sent"}
    # Backoff (1 s, 2 s, 4 s … honouring Retry-After) means a handful of tries over 8 s, not hundreds.
    assert 2 <= attempts <= 8, attempts
    assert sum((refused_5xx + refused_429).values()) <= len(replies) * 8
