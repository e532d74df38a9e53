"""A broker that accepts the connection and never answers must not hold up a webhook: the event is
stored, the nudge is given up after one timeout, and the sweep applies the event once the broker is back."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from omnidesk import broker as nudges
from omnidesk.inbox.models import InboundEvent
from tests.conftest import api_body

#: what a loaded 2-core machine may add to a wait, on top of `WAIT_S`
SLACK_S = 1.0


class HungPeer:
    """A TCP server that accepts every connection and never says a word: a hung Redis or RabbitMQ."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.accepted.append(conn)

    def close(self) -> None:
        """Hang up: every client then reads end-of-file at once instead of waiting for its timeout."""
        self.listener.close()
        for conn in self.accepted:
            conn.close()


def _probe(broker: dramatiq.Broker, name: str) -> dramatiq.Actor:
    @dramatiq.actor(broker=broker, queue_name=name, actor_name=f"probe_{name}")
    def probe(ids: list[int]) -> None:  # never consumed
        pass

    return probe


@pytest.fixture
def hung_peer() -> Iterator[HungPeer]:
    peer = HungPeer()
    try:
        yield peer
    finally:
        peer.close()
        assert nudges.nudges_drain(), "the publisher is still stuck after the peer hung up"
        healthy = StubBroker()
        probe = _probe(healthy, "after_hang")
        nudges.nudge_batched(probe, [1], size=10)
        assert healthy.queues["after_hang"].qsize() == 1  # free again: a nudge leaves before its caller returns


def _timed(call, *args, **kwargs) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    call(*args, **kwargs)
    return time.monotonic() - start


def test_a_hung_broker_costs_one_timeout_per_round_and_callers_at_most_the_wait(hung_peer):
    from dramatiq.brokers.redis import RedisBroker

    read_timeout_s = nudges.WAIT_S + 3 * SLACK_S  # the broker client's own timeout, well over the wait
    probe = _probe(RedisBroker(url=f"redis://127.0.0.1:{hung_peer.port}/0?socket_timeout={read_timeout_s}"), "hung")

    assert _timed(nudges.nudge_batched, probe, [0], size=10) < nudges.WAIT_S + SLACK_S
    # The send is stuck now: later callers don't wait for it at all.
    later = [_timed(nudges.nudge_batched, probe, [i], size=10) for i in range(1, 21)]
    assert sum(later) < SLACK_S, later

    time.sleep(read_timeout_s + SLACK_S)  # the stuck send times out
    # The 20 ids that waited behind it were given up to the sweep, not tried one timeout each.
    assert len(hung_peer.accepted) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_a_webhook_is_answered_and_stored_while_the_broker_hangs(
    scheme, hung_peer, api_account, post_hook, monkeypatch, django_capture_on_commit_callbacks
):
    from dramatiq.brokers.rabbitmq import RabbitmqBroker
    from dramatiq.brokers.redis import RedisBroker

    from omnidesk.inbox.tasks import apply_inbound_events

    url = f"{scheme}://127.0.0.1:{hung_peer.port}/0"  # the clients' stock timeouts: 5 s, 15 s for AMQP
    monkeypatch.setattr(apply_inbound_events, "broker", RedisBroker(url=url) if scheme == "redis" else RabbitmqBroker(url=url))

    with django_capture_on_commit_callbacks() as after_commit:
        response = post_hook("acme-api", api_body())
    assert response.status_code == 200 and len(after_commit) == 1
    # What the answer waits for once the event is committed: the nudge.
    assert _timed(after_commit[0]) < nudges.WAIT_S + SLACK_S
    assert InboundEvent.objects.get().status == InboundEvent.Status.PENDING  # the sweep's to apply
