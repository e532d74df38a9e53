"""The broker (a private Redis, or a private RabbitMQ node) stopped for 30 s mid-stream: every
webhook is still answered 200 and stored, mail is still taken from IMAP, and everything is applied
and sent once it returns. Redis comes back empty (it keeps nothing on disk); RabbitMQ comes back
with the messages it had persisted, which the apply must not double."""

from __future__ import annotations

import time

import pytest

from tests.conftest import need
from tests.services.procs import subprocess_database_url, wait_until

from .stack import PrivateRabbit, PrivateRedis, Stack, rabbit_missing, redis_missing
from .traffic import Mailbox, Sender, Tally, desk_accounts, drain, hooks, ledger, replies_make, wait_applied

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

OUTAGE_S = 30.0
KINDS = ("api", "twitter", "facebook", "email")
BROKERS = {"redis": (PrivateRedis, redis_missing), "rabbitmq": (PrivateRabbit, rabbit_missing)}


@pytest.mark.parametrize("kind", BROKERS)
def test_broker_down_30s_webhooks_stored_and_applied_after(kind, postgres, platforms, smtp, dovecot_server, agent):
    make, missing = BROKERS[kind]
    need(missing())
    mailbox = Mailbox(dovecot_server, dovecot_server.new_user("desk"), "broker")
    desk_accounts(platforms_url=platforms.url, smtp_port=smtp.port, imap_port=dovecot_server.port, mailbox=mailbox.user)
    db = subprocess_database_url()
    broker = make()
    broker.start()
    stack = Stack(db, broker.url)
    try:
        stack.start(pollers=True)
        sender = Sender(stack.web_port)
        sender.stream(hooks(20, "b0"), per_s=25).join(60)
        mailbox.deliver(range(100, 102))  # mail to answer during the outage
        wait_applied(stack, db, 22)

        broker.stop()
        down_at = time.monotonic()
        during = hooks(80, "b1")
        streaming = sender.stream(during, per_s=8)
        mailbox.deliver(range(6))
        replies = replies_make(agent=agent, kinds=KINDS, per_kind=2)
        streaming.join(OUTAGE_S + 30)
        wait_until(lambda: Tally.read(db).stored >= 20 + len(during) + len(mailbox.sent), timeout=OUTAGE_S,
                   what="the mail to be stored while the broker is down")
        in_outage = Tally.read(db)
        print(f"{kind} down {time.monotonic() - down_at:.0f}s: {in_outage}")
        assert set(sender.statuses) == {200}, sender.statuses  # answered, never a 5xx, while the broker is away
        assert in_outage.pending > 0 and not platforms.deliveries.markers() & set(replies)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))

        broker.start()  # same port; Redis has forgotten every message enqueued before the outage
        back_at = time.monotonic()
        sent = {**sender.accepted, "email": mailbox.sent}
        through_at, tally = drain(stack, db, sent, replies, platforms.deliveries, timeout=90,
                                  what="everything applied and sent after the broker returned")
        recovered_in = through_at - back_at
    finally:
        stack.close()
        broker.destroy()

    print(f"recovered {recovered_in:.1f}s after the broker returned; webhook answers {dict(sender.statuses)}")
    lost, duplicated = ledger(f"{kind} down 30s", sent=sent, tally=tally, replies=replies, deliveries=platforms.deliveries)
    assert lost == 0 and duplicated == 0
    assert len(replies) == 2 * len(KINDS)
    assert tally.pending == 0 and tally.failed == 0 and tally.replies == {"sent": len(replies)}
