"""Enqueueing that never fails the caller: the database row is the truth, the broker a nudge.

When the broker is down the work waits for the periodic sweeps; the caller's commit stands.

RabbitMQ: dramatiq's broker opens one AMQP connection per thread and keeps it until the broker
closes. Under ASGI every request runs its sync code on a thread of its own, so sending from the
request thread leaked a connection per webhook until RabbitMQ ran out of file descriptors (found by
tests/scaleout: 10,000 webhooks, `emfile`, then INTERNAL_ERROR on every queue.declare). Nudges to
RabbitMQ therefore go through one long-lived publisher thread per process: one connection, however
many request threads come and go. Redis shares a connection pool across threads and sends in place.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

log = logging.getLogger(__name__)

_outbox: queue.SimpleQueue[tuple[Any, tuple, dict]] = queue.SimpleQueue()
_publisher: list[threading.Thread] = []
_publisher_lock = threading.Lock()


def nudge(actor: Any, *args: Any, **options: Any) -> bool:
    """Enqueue `actor(*args)`; False (and a warning) when the broker refused. Never raises."""
    if _per_thread_connections(actor):
        _publisher_ensure()
        _outbox.put((actor, args, options))
        return True
    return _send(actor, args, options)


def _send(actor: Any, args: tuple, options: dict) -> bool:
    try:
        if options:
            actor.send_with_options(args=args, **options)
        else:
            actor.send(*args)
        return True
    except Exception as exc:  # noqa: BLE001 - any broker failure: the sweep takes over
        log.warning("could not enqueue %s (a sweep will): %s", getattr(actor, "actor_name", actor), exc)
        return False


def _per_thread_connections(actor: Any) -> bool:
    try:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker
    except ImportError:  # pika is not installed: no RabbitMQ broker either
        return False
    return isinstance(getattr(actor, "broker", None), RabbitmqBroker)


def _publisher_ensure() -> None:
    with _publisher_lock:
        if _publisher and _publisher[0].is_alive():
            return
        thread = threading.Thread(target=_publish_forever, name="broker-publisher", daemon=True)
        _publisher[:] = [thread]
        thread.start()


def _publish_forever() -> None:
    while True:
        actor, args, options = _outbox.get()
        _send(actor, args, options)


class _Batch:
    """The ids waiting for one list-taking actor, and whether a thread is sending them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.waiting: list[Any] = []
        self.sending = False


_batches: dict[str, _Batch] = {}
_batches_lock = threading.Lock()


def nudge_batched(actor: Any, ids: list[Any], *, size: int) -> None:
    """Enqueue `actor(ids)` in messages of at most `size` ids, merging concurrent callers.

    The first caller sends, in place; ids other threads add meanwhile are not sent one message
    each but taken by that sender's next message (it sends until nothing waits). A lone caller
    (a test, a quiet desk) sends its own ids before it returns, as `nudge` does; under a burst of
    webhooks a message carries several events, so a worker claims them in one transaction instead
    of one claim per event. Never raises; a refused send is left to the sweep like any nudge.
    """
    with _batches_lock:
        batch = _batches.setdefault(actor.actor_name, _Batch())
    with batch.lock:
        batch.waiting += ids
        if batch.sending:
            return
        batch.sending = True
    try:
        while True:
            with batch.lock:
                taken, batch.waiting = batch.waiting, []
                if not taken:
                    batch.sending = False
                    return
            for start in range(0, len(taken), size):
                nudge(actor, taken[start : start + size])
    except BaseException:
        with batch.lock:
            batch.sending = False
        raise
