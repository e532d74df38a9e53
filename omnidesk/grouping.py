"""Writes of concurrent threads merged into one statement and one commit (group commit).

Each webhook committed its raw event alone: an INSERT and a WAL flush per request, about 0.4 ms of
PostgreSQL CPU per event under bench/ingest.py, a third more than the same rows written in tens; each
"next ticket" was a statement and a commit of its own too (routing.queue). Here the threads of a
process that write at the same moment take turns as the writer: the first to come writes its item
and those that arrive while it writes wait for it, and the next of them writes all of theirs
together, in its own statement (autocommit: committed when it returns). Each caller still returns
only once its item is committed (or the write failed, which it raises), so a webhook answers 2xx
after its event is durable, as before. A lone caller writes at once and waits for no one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Ticket(Generic[Item, Result]):
    __slots__ = ("done", "error", "item", "result")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.result: Result | None = None
        self.error: BaseException | None = None
        self.done = False


class GroupWriter(Generic[Item, Result]):
    """`write(items)` for the items of every caller waiting, run by one of them at a time.

    `write` gets at most `limit` items and returns one result per item, in their order; it runs on
    the calling thread of whoever writes (its database connection). What it raises is raised to
    every caller whose item it was given.
    """

    def __init__(self, write: Callable[[Sequence[Item]], Sequence[Result]], *, limit: int = 32) -> None:
        self._write = write
        self._limit = limit
        self._lock = threading.Lock()
        self._turn = threading.Condition(self._lock)
        self._waiting: list[_Ticket[Item, Result]] = []
        self._writing = False

    def submit(self, item: Item) -> Result:
        ticket: _Ticket[Item, Result] = _Ticket(item)
        with self._lock:
            self._waiting.append(ticket)
            while self._writing and not ticket.done:
                self._turn.wait()
            if ticket.done:  # another caller wrote it
                return self._outcome(ticket)
            self._writing = True
            self._waiting.remove(ticket)  # its own item first, whatever the limit leaves for the next turn
            group = [ticket, *self._waiting[: self._limit - 1]]
            del self._waiting[: self._limit - 1]
        try:
            results = self._write([t.item for t in group])
            for t, result in zip(group, results, strict=True):
                t.result = result
        except BaseException as exc:  # noqa: BLE001 - every caller of the group learns it, as from its own write
            for t in group:
                t.error = exc
        finally:
            with self._lock:
                for t in group:
                    t.done = True
                self._writing = False
                self._turn.notify_all()
        return self._outcome(ticket)

    @staticmethod
    def _outcome(ticket: _Ticket[Item, Result]) -> Result:
        if ticket.error is not None:
            raise ticket.error
        return ticket.result  # type: ignore[return-value]
