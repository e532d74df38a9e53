"""Least-connections accept: runweb's processes share one listening socket, and a new connection goes
to the process holding the fewest.

Each process of a closed loop of keep-alive clients serves about the same number of requests a second
(its share of the CPU), so its latency grows with the connections it holds. Under `uvicorn --workers`
whichever process woke first accepted a burst (50 clients landed 37/14, 44/7); with a socket per
process (SO_REUSEPORT) the kernel hashes each connection to one, 25 ± 4 of 50 on two, and the busier
process set the p99 of "next ticket": 29/21 made it ~20 % worse than 25/25 (bench/claim.py). Here the
processes publish how many connections they hold in a table they share (`Table`), and a process
accepts only while no live sibling holds fewer, as HAProxy's leastconn and nginx's accept_mutex keep
their workers even. A connection still waits for no one: a process defers to a sibling for at most
`GRACE`, then takes it anyway (the sibling may be stuck in a long request or dead; a dead process's
row stops being refreshed and is ignored after `STALE`). Nothing queued on the shared socket is lost
when a process dies.

runweb hands each process a `Listener` as uvicorn's socket; the process's event loop (`new_event_loop`,
uvicorn's `loop` setting) serves it with `Listener.serve` where it would have called `create_server`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import select
import socket
import time
from collections.abc import Callable
from multiprocessing import get_context
from typing import Any

logger = logging.getLogger(__name__)

#: how long a process leaves a pending connection to a sibling holding fewer before taking it itself
GRACE = 0.02
#: how often a deferring process looks again whether the connection is still waiting
RECHECK = 0.002
#: how often a process publishes its count (and that it is alive); a row older than STALE is ignored
BEAT = 0.05
STALE = 1.0
#: rows in the table: processes started over a supervisor's life (restarts, SIGTTIN) reuse stale rows
ROWS = 64


class Table:
    """The processes' shared rows of (pid, connections, last beat in ms of CLOCK_MONOTONIC), in shared
    memory handed to each process as it is spawned."""

    def __init__(self) -> None:
        spawn = get_context("spawn")
        self.cells = spawn.RawArray("q", 3 * ROWS)
        self.lock = spawn.Lock()  # two processes starting together must not take the same row

    def claim(self, pid: int) -> int:
        """A row for this process: a free one, or one whose process stopped beating."""
        with self.lock:
            now = _now_ms()
            for row in range(ROWS):
                owner, _, beat = self.cells[3 * row:3 * row + 3]
                if owner == 0 or now - beat > STALE * 1000:
                    self.cells[3 * row:3 * row + 3] = [pid, 0, now]
                    return row
        raise RuntimeError(f"more than {ROWS} live web processes share this socket")

    def publish(self, row: int, connections: int) -> None:
        self.cells[3 * row + 1] = connections
        self.cells[3 * row + 2] = _now_ms()

    def release(self, row: int) -> None:
        self.cells[3 * row:3 * row + 3] = [0, 0, 0]

    def fewest_elsewhere(self, row: int) -> int | None:
        """The fewest connections a live sibling holds (None: no live sibling)."""
        now, fewest = _now_ms(), None
        cells = self.cells[:]
        for other in range(ROWS):
            owner, held, beat = cells[3 * other:3 * other + 3]
            if other != row and owner and now - beat <= STALE * 1000 and (fewest is None or held < fewest):
                fewest = held
        return fewest


def _now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class Listener:
    """The listening socket the processes share, and their table; picklable into a spawned process
    (multiprocessing passes the socket's descriptor and the table's shared memory along)."""

    def __init__(self, host: str, port: int, backlog: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, port))
            self.sock.listen(backlog)
        except BaseException:
            self.sock.close()
            raise
        self.table = Table()

    def close(self) -> None:
        """uvicorn closes its sockets at shutdown; the serving side (`Accepting.close`) already stopped."""
        self.sock.close()

    def serve(self, loop: asyncio.AbstractEventLoop, protocol_factory: Callable[[], asyncio.Protocol], **kwargs: Any) -> Accepting:
        return Accepting(self, loop, protocol_factory, ssl=kwargs.get("ssl"))


class Accepting:
    """One process accepting from the shared socket; what uvicorn keeps as its server (it calls `close`)."""

    def __init__(self, listener: Listener, loop: asyncio.AbstractEventLoop,
                 protocol_factory: Callable[[], asyncio.Protocol], *, ssl: Any = None) -> None:
        self._sock, self._table, self._loop = listener.sock, listener.table, loop
        self._factory, self._ssl = protocol_factory, ssl
        self._sock.setblocking(False)
        self._row = self._table.claim(os.getpid())
        self._transports: set[asyncio.BaseTransport] = set()
        self._accepted = 0  # accepted, their transports not made yet
        self._deferring_since: float | None = None
        self._recheck: asyncio.TimerHandle | None = None
        self._closed = False
        self._loop.add_reader(self._sock.fileno(), self._readable)
        self._beat = self._loop.call_later(BEAT, self._publish_and_beat)

    @property
    def connections(self) -> int:
        self._transports = {t for t in self._transports if not t.is_closing()}
        return len(self._transports) + self._accepted

    def _readable(self) -> None:
        fewest = self._table.fewest_elsewhere(self._row)
        if fewest is not None and self.connections > fewest:
            now = time.monotonic()
            if self._deferring_since is None:
                self._deferring_since = now
            if now - self._deferring_since < GRACE:  # a sibling holding fewer takes it, unless it is stuck
                self._loop.remove_reader(self._sock.fileno())
                self._recheck = self._loop.call_later(RECHECK, self._listen_again)
                return
        self._deferring_since = None
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # a sibling took it, or the client gave up
        except OSError as exc:  # out of descriptors, say: stop for a moment rather than spin
            logger.warning("accepting a connection failed: %s; trying again in 0.5 s", exc)
            self._loop.remove_reader(self._sock.fileno())
            self._recheck = self._loop.call_later(0.5, self._listen_again)
            return
        conn.setblocking(False)
        self._accepted += 1
        self._table.publish(self._row, self.connections)
        task = self._loop.create_task(self._loop.connect_accepted_socket(self._factory, conn, ssl=self._ssl))
        task.add_done_callback(lambda done: self._connected(done, conn))

    def _connected(self, done: asyncio.Task[Any], conn: socket.socket) -> None:
        self._accepted -= 1
        if done.cancelled() or done.exception() is not None:
            if not done.cancelled():
                logger.warning("setting up an accepted connection failed: %s", done.exception())
            conn.close()
            return
        transport, _ = done.result()
        self._transports.add(transport)

    def _listen_again(self) -> None:
        self._recheck = None
        if self._closed:
            return
        waiting = select.poll()
        waiting.register(self._sock, select.POLLIN)
        if not waiting.poll(0):
            self._deferring_since = None  # a sibling took it: the next connection is deferred afresh
        self._loop.add_reader(self._sock.fileno(), self._readable)

    def _publish_and_beat(self) -> None:
        self._table.publish(self._row, self.connections)
        self._beat = self._loop.call_later(BEAT, self._publish_and_beat)

    def close(self) -> None:
        """Stop accepting (the connections held are uvicorn's to close) and leave the table."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._sock.fileno())
        for handle in (self._recheck, self._beat):
            if handle is not None:
                handle.cancel()
        self._table.release(self._row)

    async def wait_closed(self) -> None:
        return None


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvicorn's `loop` setting for runweb (a custom loop factory): the loop uvicorn would choose (uvloop
    when installed, else asyncio's), whose `create_server` serves a `Listener` by least-connections accept."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return _balancing(asyncio.SelectorEventLoop)()
    return _balancing(uvloop.Loop)()


@functools.cache
def _balancing(base: type[asyncio.AbstractEventLoop]) -> type[asyncio.AbstractEventLoop]:
    class BalancingLoop(base):  # type: ignore[misc, valid-type]
        async def create_server(self, protocol_factory: Any, *args: Any, sock: Any = None, **kwargs: Any) -> Any:
            if isinstance(sock, Listener):
                return sock.serve(self, protocol_factory, **kwargs)
            return await super().create_server(protocol_factory, *args, sock=sock, **kwargs)

    BalancingLoop.__name__ = BalancingLoop.__qualname__ = f"Balancing{base.__name__}"
    return BalancingLoop
