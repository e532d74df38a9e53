"""Nudges from short-lived threads (one per ASGI request) must not open a broker connection each."""

from __future__ import annotations

import os
import threading
import time
import uuid

import dramatiq
import pytest

from omnidesk.broker import nudge
from tests.conftest import need, reachable

pytestmark = [pytest.mark.services, pytest.mark.timeout(60)]


def test_nudges_from_many_request_threads_share_one_rabbitmq_connection():
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    url = os.environ.get("OMNIDESK_TEST_AMQP_URL", "")
    need(None if url and reachable(url) else "needs RabbitMQ: set OMNIDESK_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/")
    broker = RabbitmqBroker(url=url)
    queue_name = f"publisher-probe-{uuid.uuid4().hex[:8]}"

    @dramatiq.actor(broker=broker, queue_name=queue_name, actor_name=f"probe_{queue_name}")
    def probe(i: int) -> None:  # never consumed: only counted
        pass

    try:
        threads = [threading.Thread(target=nudge, args=(probe, i)) for i in range(60)]  # each lives for one request
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        deadline = time.monotonic() + 20
        while broker.get_queue_message_counts(queue_name)[0] < 60 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert broker.get_queue_message_counts(queue_name)[0] == 60  # none lost
        # The publisher's connection, plus the one this thread used to count: never one per request thread.
        assert len(broker.connections) <= 2, len(broker.connections)
    finally:
        broker.channel.queue_delete(queue_name)
        broker.channel.queue_delete(f"{queue_name}.DQ")
        broker.channel.queue_delete(f"{queue_name}.XQ")
        broker.close()
