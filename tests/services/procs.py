"""Real processes for service tests: dramatiq workers, an ASGI server, a real broker client.

Every process is started in its own session so it and its children are killed together, by
process-group id, whatever happens in the test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote

import dramatiq

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def subprocess_database_url() -> str:
    """The URL of the database this test runs on (pytest-django's test_… database)."""
    from django.db import connection

    s = connection.settings_dict
    auth = quote(s["USER"] or "", safe="")
    if s.get("PASSWORD"):
        auth += ":" + quote(s["PASSWORD"], safe="")
    host = s["HOST"] or "127.0.0.1"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{quote(s['NAME'], safe='')}"


class Proc:
    """A subprocess in its own process group, logging to a temp file; `stop()` is idempotent."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str]) -> None:
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"omnidesk-{name}-", suffix=".log", delete=False)
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env=dict(env), stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self, tail: int = 4000) -> str:
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace")
        return text[-tail:]

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


def base_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRAMATIQ_", "PYTEST_"))}
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def start_worker(*, database_url: str, broker_url: str, processes: int = 1, threads: int = 2, **extra_env: str) -> Proc:
    """`manage.py rundramatiq` (which execs the dramatiq CLI with every app's tasks module)."""
    env = base_env(DATABASE_URL=database_url, DRAMATIQ_BROKER_URL=broker_url, **extra_env)
    argv = [
        sys.executable, "manage.py", "rundramatiq", "--processes", str(processes), "--threads", str(threads),
        "--worker-shutdown-timeout", "3000",
    ]
    return Proc("worker", argv, env)


def start_asgi(*, port: int, database_url: str, **extra_env: str) -> Proc:
    env = base_env(DATABASE_URL=database_url, **extra_env)
    argv = [
        sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log", "--log-level", "warning",
    ]
    return Proc("asgi", argv, env)


def real_broker(url: str, queues: tuple[str, ...] = ("inbound", "maintenance")) -> dramatiq.Broker:
    """A client of the real broker, emptied of anything a previous run left behind.

    The test process's own dramatiq broker is the embedded stub; this one only enqueues.
    """
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker: dramatiq.Broker = RabbitmqBroker(url=url, middleware=[])
        for queue in queues:
            broker.declare_queue(queue, ensure=True)  # type: ignore[call-arg]
        broker.flush_all()
    else:
        import redis
        from dramatiq.brokers.redis import RedisBroker

        redis.Redis.from_url(url).flushdb()  # the test broker has a database of its own
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
