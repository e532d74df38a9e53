"""kill -9 of a worker mid-batch, with webhooks from every push channel, mail over IMAP and replies
going out: after a restart every event is applied within 2 minutes, exactly once, and every reply
is delivered once — the two the platforms had already received when the worker died included: an
API-channel reply (sent again, recognised by its Idempotency-Key) and a public reply on X (which
has no such key: looked up on X, found, recorded without a second post)."""

from __future__ import annotations

import time

import pytest

from omnidesk.tickets.models import Message, TicketEvent
from tests.services.procs import real_broker, subprocess_database_url, wait_until

from .peers import FakePlatforms
from .stack import PROCESS_START_S, Stack
from .traffic import (
    Mailbox, Sender, Tally, all_through, applied_count, desk_accounts, drain, hooks, ledger, replies_make, wait_applied,
)

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

KINDS = ("api", "twitter", "facebook", "email")
RECOVERY_S = 120  # the bound: everything applied within 2 minutes of the restart
#: the replies the platforms record and then keep answering until the worker is dead: an
#: API-channel reply and an X reply, made first and together, so both are sent at once
HELD_API, HELD_X = 0, 1
#: one worker thread per held reply, and one more to go on applying the backlog
THREADS = 3


def test_kill9_worker_mid_batch_loses_nothing_and_doubles_nothing(postgres, broker_url, platforms, smtp,
                                                                    dovecot_server, agent):
    mailbox = Mailbox(dovecot_server, dovecot_server.new_user("desk"), "kill")
    desk_accounts(platforms_url=platforms.url, smtp_port=smtp.port, imap_port=dovecot_server.port, mailbox=mailbox.user)
    db = subprocess_database_url()
    real_broker(broker_url).close()
    stack = Stack(db, broker_url)
    try:
        stack.start(pollers=True, threads=THREADS)
        sender = Sender(stack.web_port)
        sender.stream(hooks(20, "k0"), per_s=25).join(60)
        mailbox.deliver(range(8))
        wait_applied(stack, db, 20)
        wait_until(lambda: all_through(db, {"email": mailbox.sent}, {}, platforms.deliveries), timeout=PROCESS_START_S,
                   what="the first mail to be polled and applied")

        # The platforms record an API reply and an X reply, then keep their answers:
        # the worker dies with two deliveries the platforms have and the outbox does not know about.
        # Each sender waits for an answer at most the account's timeout_s (5 s): the kill must
        # come before that, or the sender gives up and retries on its own.
        platforms.hold(HELD_API, HELD_X)
        replies = replies_make(agent=agent, kinds=("api", "twitter"), per_kind=1)
        assert replies == {HELD_API: "api", HELD_X: "twitter"}
        replies.update(replies_make(agent=agent, kinds=KINDS, per_kind=3, first=len(replies)))
        assert platforms.held.wait(PROCESS_START_S), f"the held replies never reached the platforms\n{stack.logs()}"
        held_at = time.monotonic()
        applied_before = applied_count(db)
        streaming = sender.stream(hooks(120, "k1"), per_s=200)  # faster than one worker thread applies

        def mid_batch() -> bool:
            tally = Tally.read(db)
            return tally.pending >= 10 and sum(map(len, tally.applied.values())) > applied_before

        wait_until(mid_batch, timeout=30, what="a backlog with the worker busy applying it", every=0.02)
        stack.kill9("worker")
        platforms.release.set()
        killed_at = Tally.read(db)
        print(f"after kill -9 ({time.monotonic() - held_at:.1f}s after the held replies were recorded): {killed_at}")
        assert killed_at.pending > 0, killed_at
        assert killed_at.replies.get("sending") == 2, f"a held send gave up (timeout_s) before the kill: {killed_at}"

        restarted = time.monotonic()
        stack.worker("worker-2", threads=THREADS)
        streaming.join(60)
        streaming = sender.stream(hooks(60, "k2"), per_s=25)
        mailbox.deliver(range(8, 16))
        streaming.join(60)
        sent = {**sender.accepted, "email": mailbox.sent}
        through_at, tally = drain(stack, db, sent, replies, platforms.deliveries, timeout=RECOVERY_S,
                                  what="every event applied and every reply sent after the restart")
        recovered_in = through_at - restarted
    finally:
        stack.close()

    print(f"recovered {recovered_in:.1f}s after the restart; webhook answers {dict(sender.statuses)}")
    lost, duplicated = ledger("kill -9 worker", sent=sent, tally=tally, replies=replies, deliveries=platforms.deliveries)
    assert lost == 0 and duplicated == 0
    assert recovered_in < RECOVERY_S
    assert tally.pending == 0 and tally.failed == 0
    assert tally.replies == {"sent": len(replies)}
    # The API reply the platform had when the worker died was sent again with its idempotency
    # key, and the receiver recognised it: delivered once, repeated once.
    assert platforms.deliveries.deduplicated[("api", HELD_API)] == 1
    assert_reconciled_on_x(platforms)
    assert set(sender.statuses) == {200}


def assert_reconciled_on_x(platforms: FakePlatforms) -> None:
    """The X reply the platform had when the worker died was looked up on X, found and recorded
    with the tweet's id, never posted again: one POST, the reply `sent`, its event saying why."""
    tweet = next(p for p in platforms.posted["tweet"] if f"[r{HELD_X}]" in p.text)
    assert platforms.deliveries.delivered[("twitter", HELD_X)] == 1
    assert platforms.lookups["twitter"] >= 1
    message = Message.objects.select_related("outbound").get(direction="out", text__contains=f"[r{HELD_X}]")
    assert (message.outbound.status, message.outbound.error_code, message.external_id) == ("sent", "", tweet.id)
    event = TicketEvent.objects.get(message=message, action="reply_sent")
    assert event.new == tweet.id
    assert "not sent again" in event.note, event.note
