"""PostgreSQL (a private cluster) restarted mid-stream: while it is down the webhook answers 503
with Retry-After — never a 500, never a 2xx for something not stored — the sender retries as a
platform does, and every event is applied once and every reply sent once after it is back."""

from __future__ import annotations

import json
import time

import psycopg
import pytest
from rest_framework.authtoken.models import Token

from tests.conftest import need
from tests.services.procs import real_broker, subprocess_database_url

from .stack import PROCESS_START_S, PrivateCluster, Stack, postgres_missing
from .traffic import Sender, desk_accounts, drain, hooks, ledger, wait_applied

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

DOWN_S = 3.0
REPLY_KINDS = ("api", "twitter", "facebook")


def tickets_to_answer(database_url: str, per_kind: int) -> list[tuple[str, int]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "select a.kind, min(m.ticket_id) from tickets_message m join plugins_channelaccount a on a.id = m.account_id"
            " where m.direction = 'in' and a.kind = any(%s) group by a.kind, m.ticket_id order by 2",
            [list(REPLY_KINDS)],
        ).fetchall()
    chosen: dict[str, list[int]] = {}
    for kind, ticket in rows:
        if len(chosen.setdefault(kind, [])) < per_kind:
            chosen[kind].append(ticket)
    return [(kind, t) for kind, tickets in sorted(chosen.items()) for t in tickets]


def test_postgres_restart_mid_stream_503_then_nothing_lost(postgres, broker_url, platforms, agent):
    need(postgres_missing())
    desk_accounts(platforms_url=platforms.url)
    token = Token.objects.create(user=agent).key
    cluster = PrivateCluster()
    stack = None
    try:
        cluster.start()
        cluster.load(subprocess_database_url())
        db = cluster.url()
        real_broker(broker_url).close()
        stack = Stack(db, broker_url)
        stack.start()
        sender = Sender(stack.web_port, max_wait_s=5.0)  # Retry-After honoured
        sender.stream(hooks(20, "p0"), per_s=25).join(60)
        wait_applied(stack, db, 20)

        replies = dict(enumerate(kind for kind, _ in tickets_to_answer(db, per_kind=2)))
        held = next(marker for marker, kind in replies.items() if kind == "twitter")
        platforms.hold(held)  # X gets this reply; its answer comes back only once the database is down
        for marker, (_, ticket) in enumerate(tickets_to_answer(db, per_kind=2)):
            body = json.dumps({"text": f"Looking into it [r{marker}]"}).encode()
            sender.post(f"/api/v1/tickets/{ticket}/replies/", body, {"Authorization": f"Token {token}"}, ok=(202,))
        streaming = sender.stream(hooks(100, "p1"), per_s=20)
        assert platforms.held.wait(PROCESS_START_S), f"the held reply never reached X\n{stack.logs()}"
        # A second platform that retries every 0.1 s: it meets the server going down and coming up.
        prober = Sender(stack.web_port, max_wait_s=0.1)
        probing = prober.stream(hooks(40, "p2"), per_s=10)
        cluster.stop()
        platforms.release.set()
        time.sleep(DOWN_S)
        cluster.start()
        streaming.join(120)
        probing.join(120)
        sent = {kind: sender.accepted.get(kind, set()) | prober.accepted.get(kind, set())
                for kind in {*sender.accepted, *prober.accepted}}
        _, tally = drain(stack, db, sent, replies, platforms.deliveries, timeout=90,
                         what="everything applied and sent after the restart")
        with psycopg.connect(db) as conn:
            attempts = {marker: (status, tries) for marker, status, tries in conn.execute(
                "select substring(m.text from '\\[r([0-9]+)\\]')::int, o.status, o.attempts"
                " from tickets_outboundmessage o join tickets_message m on m.id = o.message_id").fetchall()}
    finally:
        if stack is not None:
            stack.close()
        cluster.destroy()

    print(f"replies (marker: status, attempts): {attempts}; held by X: {held}")
    print(f"webhook answers {dict(sender.statuses)} and to the prober {dict(prober.statuses)}; "
          f"Retry-After of the 503s {sorted(set(sender.unavailable + prober.unavailable))}")
    lost, duplicated = ledger("postgres restart", sent=sent, tally=tally, replies=replies, deliveries=platforms.deliveries)
    assert lost == 0 and duplicated == 0
    assert sender.statuses[503] > 0 and prober.statuses[503] > 0, "no 503 while the database was down"
    for platform in (sender, prober):
        assert not platform.bodies_500 and set(platform.statuses) <= {200, 202, 503}, platform.statuses
        assert all(value.isdigit() and int(value) > 0 for value in platform.unavailable), platform.unavailable
    assert tally.pending == 0 and tally.failed == 0 and tally.replies == {"sent": len(replies)}
    # The tweet X accepted while the database was down was recorded when it came back, in that same attempt, not
    # sent again. Another reply whose attempt the stop cut short may take a second one (reconciled, never
    # delivered twice: the ledger above).
    assert platforms.deliveries.delivered[("twitter", held)] == 1 and attempts[held] == ("sent", 1), attempts
