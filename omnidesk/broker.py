"""Enqueueing that never fails nor holds up the caller: the database row is the truth, the broker a nudge.

Every nudge is sent by one long-lived publisher thread per process. A caller that finds it idle waits
for its nudge to leave, but for no more than `WAIT_S` of sending; one that finds it busy (sending, or
stuck in a send) does not wait: its nudge rides on the next round. Why:

- A hung broker (TCP connection accepted, nothing answered) held each webhook for the broker
  client's read timeout, 5 s with Redis (15 s for RabbitMQ's handshake), although the event was
  committed and the sweep applies it anyway. Now a webhook answers within `WAIT_S` whatever the
  broker does, and after a failed send what waits is given up to the sweeps, so a hang costs one
  timeout per round of sends, not one per nudge, and nothing piles up in memory.
- RabbitMQ: dramatiq's broker opens one AMQP connection per thread and keeps it until the broker
  closes. Under ASGI every request runs its sync code on a thread of its own, so sending from the
  request thread leaked a connection per webhook until RabbitMQ ran out of file descriptors (found
  by tests/scaleout: 10,000 webhooks, `emfile`, then INTERNAL_ERROR on every queue.declare). One
  publisher thread is one connection, however many request threads come and go.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: the longest a caller waits on the broker for its nudge to leave. A healthy broker answers in a
#: millisecond, so only a hung one makes a caller return before it has: a quiet desk, a test, a
#: command that exits next, each sees its nudge sent when the call returns.
WAIT_S = 0.5


def nudge(actor: Any, *args: Any, **options: Any) -> None:
    """Enqueue `actor(*args)`. Never raises: a refused or hung send is logged and left to the sweeps."""
    _publisher.submit(lambda: _publisher.singles.append((actor, args, options)))


def nudge_batched(actor: Any, ids: list[Any], *, size: int) -> None:
    """Enqueue `actor(ids)` in messages of at most `size` ids, merging concurrent callers.

    Ids added while the publisher is sending are not sent one message each but merged into its next
    round (and their callers return at once), so under a burst of webhooks a message carries several
    events and a worker claims them in one transaction instead of one claim per event. Never raises.
    """

    def add() -> None:
        waiting = _publisher.batches.setdefault(actor.actor_name, (actor, size, []))
        waiting[2].extend(ids)

    _publisher.submit(add)


def nudges_drain(*, timeout_s: float = 30.0) -> bool:
    """Wait until every nudge submitted so far is sent or given up; False if that took too long.

    For whoever must not leave a nudge in flight: a test, before the next one begins.
    """
    with _publisher.lock:
        ticket = _publisher.submitted
        return _publisher.done.wait_for(lambda: _publisher.finished >= ticket or not _publisher.alive(), timeout=timeout_s)


class _Publisher:
    """The nudges waiting to be sent, and the one thread that sends them."""

    def __init__(self) -> None:
        self._start_empty()

    def _start_empty(self) -> None:
        """No nudge waiting, no thread, a lock no one holds: at start, and in a forked child, which
        inherits none of the parent's threads (its publisher, or a caller holding the lock at the
        fork, which would have held it in the child for ever), and must not send the parent's nudges
        a second time."""
        self.lock = threading.Lock()
        self.work = threading.Condition(self.lock)  # the publisher waits here for something to send
        self.done = threading.Condition(self.lock)  # callers wait here for their round to be sent
        self.singles: list[tuple[Any, tuple, dict]] = []
        self.batches: dict[str, tuple[Any, int, list[Any]]] = {}  # per actor name: actor, size, ids
        self.submitted = 0  # a caller's ticket
        self.finished = 0  # every ticket up to this one is sent or given up
        self.round_started: float | None = None  # when the publisher took what it is sending now
        self.thread: threading.Thread | None = None

    def submit(self, add: Callable[[], None]) -> None:
        with self.lock:
            busy = self.submitted > self.finished
            add()
            self.submitted += 1
            ticket = self.submitted
            if not self.alive():
                self.thread = threading.Thread(target=self._run, name="broker-publisher", daemon=True)
                self.thread.start()
            self.work.notify()
            if busy:
                return  # a round is under way (or stuck): this rides on the next one, no need to wait
            self._wait(ticket)

    def _wait(self, ticket: int) -> None:
        """Until `ticket` is sent or its round has been sending for `WAIT_S`; the caller holds the lock.

        Counted from the round's start, not the caller's: on a loaded machine the publisher may
        take a while to run, and that is no reason to return before a healthy broker has the nudge.
        """
        while self.finished < ticket and self.alive():
            started = self.round_started
            sending_for = 0.0 if started is None else time.monotonic() - started
            if sending_for >= WAIT_S:
                return
            self.done.wait(WAIT_S - sending_for)

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _run(self) -> None:
        while True:
            with self.lock:
                self.work.wait_for(lambda: self.submitted > self.finished)
                ticket = self.submitted
                messages = self._take()
                self.round_started = time.monotonic()
            self._send_all(messages)
            with self.lock:
                self.finished = ticket
                self.round_started = None
                self.done.notify_all()

    def _take(self) -> list[tuple[Any, tuple, dict]]:
        """Everything waiting, as messages; the caller holds the lock."""
        messages = self.singles
        for actor, size, ids in self.batches.values():
            messages += [(actor, (ids[start : start + size],), {}) for start in range(0, len(ids), size)]
        self.singles, self.batches = [], {}
        return messages

    def _send_all(self, messages: list[tuple[Any, tuple, dict]]) -> None:
        for i, (actor, args, options) in enumerate(messages):
            if not _send(actor, args, options):
                with self.lock:
                    given_up = len(messages) - i - 1 + len(self._take())
                if given_up:
                    log.warning("broker failing: %d more nudges left to the sweeps", given_up)
                return


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


_publisher = _Publisher()
os.register_at_fork(after_in_child=_publisher._start_empty)
