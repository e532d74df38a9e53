"""Concurrent webhooks share broker messages; no id is lost or sent twice, and a lone caller's is sent when it returns."""

from __future__ import annotations

import threading
import time

import dramatiq
from dramatiq.brokers.stub import StubBroker

from omnidesk.broker import nudge_batched, nudges_drain


class SlowBroker(StubBroker):
    """A broker whose sends take a while, as a real one's round trip does: callers overlap."""

    def enqueue(self, message, *, delay=None):  # type: ignore[no-untyped-def]
        time.sleep(0.02)
        return super().enqueue(message, delay=delay)


def _probe(broker: StubBroker, name: str):  # type: ignore[no-untyped-def]
    broker.declare_queue(name)

    @dramatiq.actor(broker=broker, queue_name=name, actor_name=f"probe_{name}")
    def probe(ids: list[int]) -> None:  # never consumed: only counted
        pass

    return probe


def _messages(broker: StubBroker, name: str) -> list[dramatiq.Message]:
    return [dramatiq.Message.decode(raw) for raw in broker.queues[name].queue]


def _sent(broker: StubBroker, name: str) -> list[list[int]]:
    return [m.args[0] for m in _messages(broker, name)]


def test_a_lone_caller_sends_its_ids_before_it_returns():
    broker = StubBroker()
    probe = _probe(broker, "lone")
    nudge_batched(probe, [1], size=10)
    assert _sent(broker, "lone") == [[1]]
    nudge_batched(probe, list(range(2, 25)), size=10)  # more than one message's worth: split
    assert [len(ids) for ids in _sent(broker, "lone")] == [1, 10, 10, 3]


def test_concurrent_callers_share_messages_and_every_id_is_sent_once():
    broker = SlowBroker()
    probe = _probe(broker, "burst")
    threads = [threading.Thread(target=nudge_batched, args=(probe, [i]), kwargs={"size": 10}) for i in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert nudges_drain()  # callers that found the publisher busy returned at once: their ids rode on
    sent = _sent(broker, "burst")
    assert sorted(i for ids in sent for i in ids) == list(range(60))
    assert all(len(ids) <= 10 for ids in sent)
    assert len(sent) < 60  # callers that arrived during a send rode along


def test_a_forked_child_sends_its_own_nudges_and_none_of_the_parents():
    """A child forked while a caller held the publisher's lock and a nudge was waiting (as when a process
    manager forks workers from a parent that sent nudges) starts with a publisher of its own: its nudge
    is sent, the parent's is not sent again, and nothing waits on a lock no thread of the child holds."""
    import os
    import select
    import signal

    from omnidesk import broker as nudges

    broker = StubBroker()
    probe = _probe(broker, "forked")
    reading, writing = os.pipe()
    with nudges._publisher.lock:  # a caller of the parent in the middle of submitting
        nudges._publisher.singles.append((probe, ([0],), {}))
        pid = os.fork()
        if pid == 0:  # the child: report what it sent, and never return into pytest
            try:
                nudge_batched(probe, [1], size=10)
                os.write(writing, repr(_sent(broker, "forked")).encode())
            finally:
                os._exit(0)
        nudges._publisher.singles.clear()
    os.close(writing)
    with os.fdopen(reading) as answer:
        answered = select.select([answer], [], [], 10)[0]
        if not answered:  # stuck on the inherited lock
            os.kill(pid, signal.SIGKILL)
        text = answer.read() if answered else "(no answer in 10 s)"
    os.waitpid(pid, 0)
    assert text == "[[1]]"
