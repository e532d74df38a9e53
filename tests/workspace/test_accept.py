"""Least-connections accept (omnidesk/workspace/accept.py), in one process: acceptors sharing a socket and a table."""

from __future__ import annotations

import asyncio
import copy
import socket
import time

import pytest

from omnidesk.workspace import accept
from omnidesk.workspace.accept import Accepting, Listener, Table, new_event_loop


class Held(asyncio.Protocol):
    """A connection kept open, doing nothing."""


def test_a_row_whose_process_stopped_beating_is_ignored_and_taken_again():
    table = Table()
    first, second = table.claim(101), table.claim(102)
    assert first != second
    table.publish(first, 7)
    table.publish(second, 3)
    assert table.fewest_elsewhere(first) == 3 and table.fewest_elsewhere(second) == 7
    table.cells[3 * second + 2] -= int(accept.STALE * 1000) + 1  # process 102 stopped beating a while ago
    assert table.fewest_elsewhere(first) is None
    assert table.claim(103) == second  # its row is taken by the next process to start
    table.release(first)
    assert table.fewest_elsewhere(second) is None and table.claim(104) == first


async def _connect(port: int, count: int) -> list[socket.socket]:
    out = []
    for _ in range(count):
        out.append(socket.create_connection(("127.0.0.1", port)))
        await asyncio.sleep(0.005)  # one at a time, each accepted before the next arrives
    return out


async def _until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def _twin(listener: Listener) -> Listener:
    """The listener as a second process gets it: the same socket and table, through a descriptor of its own."""
    twin = copy.copy(listener)
    twin.sock = listener.sock.dup()
    return twin


def _close(servers: list[Accepting], clients: list[socket.socket], listeners: list[Listener]) -> None:
    for server in servers:
        server.close()
    for client in clients:
        client.close()
    for listener in listeners:
        listener.close()


def _run(coro) -> None:  # type: ignore[no-untyped-def]
    loop = new_event_loop()
    try:
        loop.run_until_complete(coro)
    finally:
        loop.close()


def test_each_connection_goes_to_the_acceptor_holding_fewer():
    async def main() -> None:
        listener = Listener("127.0.0.1", 0, 64)
        port = listener.sock.getsockname()[1]
        loop = asyncio.get_running_loop()
        twin = _twin(listener)
        one = await loop.create_server(Held, sock=listener)
        two = await loop.create_server(Held, sock=twin)
        assert isinstance(one, Accepting) and isinstance(two, Accepting)
        clients = await _connect(port, 10)
        await _until(lambda: one.connections + two.connections == 10)
        assert (one.connections, two.connections) == (5, 5)
        for client in clients[:4]:  # the clients that close may be either acceptor's
            client.close()
        await _until(lambda: one.connections + two.connections == 6)
        await asyncio.sleep(accept.BEAT * 2)  # the counts are published every BEAT
        clients += await _connect(port, 4)
        await _until(lambda: one.connections + two.connections == 10)
        assert (one.connections, two.connections) == (5, 5)
        _close([one, two], clients, [listener, twin])

    _run(main())


def test_a_process_that_joins_late_takes_the_new_connections_until_it_holds_as_many():
    """Connections arriving further apart than GRACE: the busier acceptor defers each one afresh."""

    async def main() -> None:
        listener = Listener("127.0.0.1", 0, 64)
        port = listener.sock.getsockname()[1]
        loop = asyncio.get_running_loop()
        early = await loop.create_server(Held, sock=listener)
        clients = await _connect(port, 4)
        await _until(lambda: early.connections == 4)
        twin = _twin(listener)
        late = await loop.create_server(Held, sock=twin)
        for n in range(4):
            clients.append(socket.create_connection(("127.0.0.1", port)))
            await _until(lambda n=n: late.connections == n + 1)
            await asyncio.sleep(accept.GRACE * 1.5)
        assert (early.connections, late.connections) == (4, 4)
        _close([early, late], clients, [listener, twin])

    _run(main())


def test_a_sibling_that_does_not_accept_delays_a_connection_only_by_the_grace():
    """A live sibling holding fewer connections that does not take them (its loop busy, or stopped):
    the acceptor defers each for at most GRACE, then takes it."""

    async def main() -> None:
        listener = Listener("127.0.0.1", 0, 64)
        port = listener.sock.getsockname()[1]
        loop = asyncio.get_running_loop()
        idle = listener.table.claim(999_999)  # a sibling that beats (its row is fresh) and holds nothing
        server = await loop.create_server(Held, sock=listener)
        started = time.monotonic()
        clients = []
        for n in range(5):
            clients.append(socket.create_connection(("127.0.0.1", port)))
            listener.table.publish(idle, 0)
            await _until(lambda n=n: server.connections == n + 1)
        waited = (time.monotonic() - started) / 5
        # each was deferred (the acceptor holds more than its sibling from the second on) and then taken
        assert accept.GRACE * 0.5 < waited < accept.GRACE + 0.2
        _close([server], clients, [listener])

    _run(main())


@pytest.mark.parametrize("held", [0, 1])
def test_a_lone_process_accepts_at_once(held):  # type: ignore[no-untyped-def]
    async def main() -> None:
        listener = Listener("127.0.0.1", 0, 64)
        port = listener.sock.getsockname()[1]
        server = await asyncio.get_running_loop().create_server(Held, sock=listener)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(held)]
        await _until(lambda: server.connections == held)
        started = time.monotonic()
        clients.append(socket.create_connection(("127.0.0.1", port)))
        await _until(lambda: server.connections == held + 1)
        assert time.monotonic() - started < accept.GRACE  # no sibling to defer to
        _close([server], clients, [listener])

    _run(main())
