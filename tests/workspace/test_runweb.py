"""`manage.py runweb`: web processes sharing a listening socket, each connection accepted by the one holding the fewest."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter

import pytest

from omnidesk.devtools.procs import (
    ROOT,
    Proc,
    child_env,
    free_port,
    group_stats,
    runweb_argv,
    serving_pids,
    wait_until,
    wait_until_serving,
)

pytestmark = pytest.mark.timeout(120)


def _children(server: Proc) -> set[int]:
    """The serving processes: those uvicorn's supervisor spawned (not it, nor multiprocessing's resource tracker)."""
    out = set()
    for pid in group_stats(server.popen.pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    out.add(pid)
        except OSError:
            continue
    return out


def _connect_and_ask(port: int, count: int) -> list[http.client.HTTPConnection]:
    """`count` keep-alive connections, each answered once (any status: the process behind it answered)."""
    connections = []
    for _ in range(count):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/api/v1/health/")
        response = conn.getresponse()
        response.read()
        assert response.status in (200, 503), response.status
        connections.append(conn)
    return connections


@pytest.fixture
def web():  # type: ignore[no-untyped-def]
    port = free_port()
    server = Proc("runweb", runweb_argv(port=port, workers=2), child_env())
    try:
        wait_until_serving(server, port, timeout=60)
        assert len(_children(server)) == 2, server.output()
        yield server, port
    finally:
        server.stop()


def _spread(server: Proc, port: int, connections: list[socket.socket]) -> Counter[int]:
    """How many of `connections` each process serves, once all are accepted."""
    ours = {conn.getsockname()[1] for conn in connections}

    def served() -> Counter[int]:
        return Counter(pid for client, pid in serving_pids(sorted(_children(server)), port).items() if client in ours)

    wait_until(lambda: sum(served().values()) == len(ours), timeout=20, what="every connection to be accepted")
    return served()


def test_connections_are_spread_evenly_over_the_processes(web):  # type: ignore[no-untyped-def]
    server, port = web
    # plain connections, held open without a request: where each is accepted is the point, and an
    # answer (a 503 from a health check with no database behind it) may close its connection
    connections = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(60)]
    try:
        # each went to the process holding fewer (a hash of the address gave 30 ± 4; one shared
        # socket accepted by whoever woke first, 44/16 and worse)
        spread = _spread(server, port, connections)
        assert len(spread) == 2 and min(spread.values()) >= 28, spread
        # closing connections of one process sends the next ones to it
        busier = spread.most_common(1)[0][0]
        ours = serving_pids(sorted(_children(server)), port)
        gone = [conn for conn in connections if ours.get(conn.getsockname()[1]) == busier][:20]
        for conn in gone:
            conn.close()
            connections.remove(conn)
        time.sleep(0.3)  # the processes publish their counts every 50 ms
        connections += [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
        spread = _spread(server, port, connections)
        assert min(spread.values()) >= 28, spread
    finally:
        for conn in connections:
            conn.close()


def test_a_process_that_stops_accepting_holds_no_connection_up(web):  # type: ignore[no-untyped-def]
    """A process holding fewer connections that does not accept (stuck in a long request, or stopped here)
    gets them for at most a moment (accept.GRACE): the other takes them after that."""
    server, port = web
    stuck = min(_children(server))
    os.kill(stuck, signal.SIGSTOP)
    try:
        started = time.monotonic()
        connections = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(10)]
        spread = _spread(server, port, connections)
        assert spread.get(stuck, 0) == 0 and sum(spread.values()) == 10, spread
        assert time.monotonic() - started < 10
    finally:
        os.kill(stuck, signal.SIGCONT)
        for conn in locals().get("connections", []):
            conn.close()


def test_a_process_that_dies_is_replaced_and_no_connection_waits_on_its_socket(web):  # type: ignore[no-untyped-def]
    server, port = web
    before = _children(server)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: _dead(victim), timeout=10, what="the killed process to exit")
    # every new connection is answered while the replacement starts: the live process takes them all
    # (the dead one's row in the shared table stops being refreshed)
    for conn in _connect_and_ask(port, 20):
        conn.close()
    wait_until(lambda: len(_children(server) - {victim}) == 2, timeout=60, what="a replacement process")
    (replacement,) = _children(server) - before
    wait_until(lambda: _serves(server, port, replacement), timeout=60, what="the replacement to take connections")


def _dead(pid: int) -> bool:
    """Exited (a zombie holds no sockets any more), or reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def _serves(server: Proc, port: int, pid: int) -> bool:
    connections = _connect_and_ask(port, 20)
    try:
        ours = {conn.sock.getsockname()[1] for conn in connections}
        return pid in {owner for client, owner in serving_pids(sorted(_children(server)), port).items() if client in ours}
    finally:
        for conn in connections:
            conn.close()


def test_a_port_held_by_a_server_that_does_not_share_it_is_a_clear_error():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "manage.py", "runweb", "--port", str(port), "--workers", "2"],
            cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=60, check=False,
        )
    assert done.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr, done.stderr[-2000:]
