"""Real processes for the service tests and the benchmarks: web, workers, scheduler, a broker client.

Every process is started in its own session so it and its children are killed together, by
process-group id, whatever happens to the caller. tests/services/procs.py and bench/_common.py
both take these from here.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

import dramatiq

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def steady_port() -> int:
    """A free loopback port below the kernel's ephemeral range, for a server that is stopped and
    started again on the same port: a port from `free_port()` is an ephemeral one, which any outgoing
    connection may take while the server is down (seen: RabbitMQ's distribution port, taken during a
    busy test run, `dist_port_already_used`)."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral_low = int(f.read().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10000, ephemeral_low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port found between 10000 and {ephemeral_low}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _tcp_sockets(pids: Sequence[int], port: int) -> list[tuple[int, int, str]]:
    """(owning pid, remote port, state) of each TCP socket of the processes `pids` on loopback `port`
    (Linux /proc: the processes' socket inodes against /proc/net/tcp; state "0A" is LISTEN)."""
    inodes = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[int(target[8:-1])] = pid
    found = []
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            local, remote, inode = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16), int(fields[9])
            if local == port and inode in inodes:
                found.append((inodes[inode], remote, fields[3]))
    return found


def serving_pids(pids: Sequence[int], port: int) -> dict[int, int]:
    """Which of the processes `pids` serves each TCP connection to loopback `port`, by the client's port."""
    return {remote: pid for pid, remote, state in _tcp_sockets(pids, port) if state != "0A"}


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, what: str, every: float = 0.05,
    error: type[BaseException] = AssertionError,
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def wait_until_serving(server: Proc, port: int, *, timeout: float = 120) -> None:
    """Until the web server `server` serves on loopback `port`, or raise with its output. runweb's shared
    socket accepts (and queues) connections from the moment it is bound, so it says when all its
    processes serve; a plain uvicorn opens its port when it does."""
    from omnidesk.workspace.management.commands.runweb import SERVING_LINE

    if "runweb" in server.popen.args:
        wait_until(lambda: SERVING_LINE in server.output(100_000) or not server.alive, timeout=timeout,
                   what="runweb's processes to serve")
    else:
        wait_until(lambda: port_open(port) or not server.alive, timeout=timeout, what="uvicorn to listen")
    if not server.alive:
        raise RuntimeError(f"the web server died:\n{server.output()}")


class Proc:
    """A subprocess in its own process group, logging to a temp file; `stop()` is idempotent."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"omnidesk-{name}-", suffix=".log", delete=False)
        self.popen = subprocess.Popen(
            list(argv), cwd=ROOT, env=dict(env), stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self, tail: int = 4000) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-tail:]

    def cpu_seconds(self) -> float:
        """CPU (user + system) used so far by every live process of this group."""
        return sum(cpu for cpu, _ in group_stats(self.popen.pid).values())

    def rss_mb(self) -> dict[int, float]:
        """Resident memory of each live process of this group, by pid."""
        return {pid: rss for pid, (_, rss) in group_stats(self.popen.pid).items()}

    def kill9(self) -> None:
        """SIGKILL the whole group at once: the CLI parent and its worker children die together."""
        self._signal_group(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, grace: float = 5.0) -> None:
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # Children may outlive the leader (or ignore SIGTERM): the group goes regardless.
        self._signal_group(signal.SIGKILL)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)  # read with output() before stopping

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_MB = (os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096) / 2**20


def group_stats(pgid: int) -> dict[int, tuple[float, float]]:
    """(CPU seconds so far, RSS in MiB) of each live process of a process group (Linux /proc).

    On a machine shared with other work, wall-clock rates move with the neighbours' load;
    CPU seconds per event do not, so benchmarks report them beside the rates.
    """
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields[0] is the state; pgrp is the 5th field of the stat line
            # utime, stime; rss in pages
            found[int(entry)] = ((int(fields[11]) + int(fields[12])) / _TICK, int(fields[21]) * _PAGE_MB)
    return found


def group_cpu_seconds(pgid: int) -> float:
    return sum(cpu for cpu, _ in group_stats(pgid).values())


def child_env(**overrides: str | None) -> dict[str, str]:
    """This process's environment for a child, without its dramatiq and pytest settings; None drops nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRAMATIQ_", "PYTEST_"))}
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: v for k, v in overrides.items() if v is not None})
    return env


def uvicorn_argv(
    *, port: int, workers: int = 1, interface: str = "asgi", fast: bool = False, log_level: str = "warning",
    backlog: int | None = None,
) -> list[str]:
    """uvicorn serving config.asgi (web + websockets), or config.wsgi in uvicorn's (deprecated) WSGI
    mode, where a fixed pool of 10 threads per process runs the views."""
    app = "config.wsgi:application" if interface == "wsgi" else "config.asgi:application"
    argv = [
        sys.executable, "-m", "uvicorn", app, "--interface", "wsgi" if interface == "wsgi" else "asgi3",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", log_level,
    ]
    if workers != 1:
        argv += ["--workers", str(workers)]
    if backlog:
        argv += ["--backlog", str(backlog)]
    if fast:
        argv += ["--http", "httptools", "--loop", "uvloop"]
    return argv


def runweb_argv(
    *, port: int, workers: int = 1, interface: str = "asgi", log_level: str = "warning", backlog: int | None = None,
) -> list[str]:
    """`manage.py runweb`: uvicorn processes sharing a listening socket, each new connection accepted by the
    process holding the fewest (not by whichever wakes first)."""
    argv = [
        sys.executable, "manage.py", "runweb", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--interface", interface, "--log-level", log_level, "--no-access-log",
    ]
    return argv + (["--backlog", str(backlog)] if backlog else [])


def rundramatiq_argv(*, processes: int, threads: int, shutdown_timeout_ms: int = 3000, quiet: bool = False) -> list[str]:
    """`manage.py rundramatiq`: the dramatiq CLI with every app's tasks module."""
    argv = [
        sys.executable, "manage.py", "rundramatiq", "--processes", str(processes), "--threads", str(threads),
        "--worker-shutdown-timeout", str(shutdown_timeout_ms),
    ]
    return argv + (["--skip-logging"] if quiet else [])


def start_worker(*, database_url: str, broker_url: str, processes: int = 1, threads: int = 2, **extra_env: str) -> Proc:
    env = child_env(DATABASE_URL=database_url, DRAMATIQ_BROKER_URL=broker_url, **extra_env)
    return Proc("worker", rundramatiq_argv(processes=processes, threads=threads), env)


def start_asgi(*, port: int, database_url: str, **extra_env: str) -> Proc:
    return Proc("asgi", uvicorn_argv(port=port), child_env(DATABASE_URL=database_url, **extra_env))


def start_scheduler(*, database_url: str, broker_url: str, **extra_env: str) -> Proc:
    """`manage.py run_scheduler`: the periodic sweeps (exactly one per deployment)."""
    env = child_env(DATABASE_URL=database_url, DRAMATIQ_BROKER_URL=broker_url, **extra_env)
    return Proc("scheduler", [sys.executable, "manage.py", "run_scheduler"], env)


def subprocess_database_url() -> str:
    """The URL of the database this process's Django runs on (under pytest: the test_… database)."""
    from django.db import connection

    s = connection.settings_dict
    auth = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    host = s["HOST"] or "127.0.0.1"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{quote(s['NAME'], safe='')}"


def real_broker(url: str, queues: tuple[str, ...] = ("inbound", "maintenance")) -> dramatiq.Broker:
    """A client of the real broker, emptied of anything a previous run left behind.

    The caller's own dramatiq broker stays the embedded stub; this one only enqueues. The
    Redis database / RabbitMQ vhost of `url` must be the caller's alone: it is flushed.
    """
    broker = broker_client(url, queues)
    if url.startswith(("amqp://", "amqps://")):
        broker.flush_all()
    else:
        import redis

        redis.Redis.from_url(url).flushdb()  # heartbeats and dead letters too, not only the queues
    return broker


def broker_client(url: str, queues: tuple[str, ...] = ("inbound", "maintenance")) -> dramatiq.Broker:
    """A client of the real broker (Redis or RabbitMQ) that only enqueues, its queues declared."""
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker: dramatiq.Broker = RabbitmqBroker(url=url, middleware=[])
        for queue in queues:
            broker.declare_queue(queue, ensure=True)  # type: ignore[call-arg]
        return broker
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=url, middleware=[])
    for queue in queues:
        broker.declare_queue(queue)
    return broker


def nudge(broker: dramatiq.Broker, event_ids: list[int]) -> None:
    """What `inbound_event_enqueue` sends, sent to the real broker."""
    broker.enqueue(
        dramatiq.Message(
            queue_name="inbound", actor_name="apply_inbound_events", args=(list(event_ids),), kwargs={}, options={}
        )
    )


def sweep(broker: dramatiq.Broker, older_than_s: float = 0) -> None:
    broker.enqueue(
        dramatiq.Message(
            queue_name="maintenance", actor_name="sweep_inbound", args=(older_than_s,), kwargs={}, options={}
        )
    )
