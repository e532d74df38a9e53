"""Shared by the bench/ scripts: the benchmark database, server and worker processes, figures.

Every bench script prints a readable summary and, with --json, one JSON object of its figures as
its LAST line of stdout. Progress goes to stderr so stdout stays the summary.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/omnidesk_bench"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- database ------------------------------------------------------------------------------


def bench_database_url() -> str:
    url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    if urlparse(url).scheme not in ("postgres", "postgresql", "pgsql"):
        raise SystemExit(f"benchmarks run on PostgreSQL; DATABASE_URL is {urlparse(url).scheme}://…")
    return url


def ensure_database(url: str, *, recreate: bool = False) -> None:
    """CREATE DATABASE when it is missing (connecting to the server's `postgres` database).

    recreate drops it first: a run then starts from the current migrations, even ones that
    were edited in place, and from empty tables with fresh statistics.
    """
    import psycopg
    from psycopg import sql

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = urlunparse(parsed._replace(path="/postgres", scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None
        if exists and recreate:
            say(f"dropping database {name}")
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            exists = False
        if not exists:
            say(f"creating database {name}")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def django_setup(url: str) -> None:
    """Django in this process, on the bench database, migrated (used for setup and counting only)."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.pop("DRAMATIQ_BROKER_URL", None)  # this process never consumes; the stub broker is fine
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", "--noinput", verbosity=0)


def reset_data() -> None:
    """Empty every omnidesk table (and the auth users), keeping the schema and migrations."""
    from django.apps import apps
    from django.db import connection

    tables = [
        m._meta.db_table
        for m in apps.get_models(include_auto_created=True)
        if m._meta.app_config.name.startswith("omnidesk.") or m._meta.app_label in ("authtoken",)
    ]
    with connection.cursor() as cur:
        cur.execute("TRUNCATE {} RESTART IDENTITY CASCADE".format(", ".join(f'"{t}"' for t in sorted(set(tables)))))


# --- processes -----------------------------------------------------------------------------


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


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


class Proc:
    """A child in its own process group (killed as a group), logging to a temp file."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"omnidesk-bench-{name}-", suffix=".log", delete=False)
        self.popen = subprocess.Popen(
            list(argv), cwd=ROOT, env=dict(env), stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self, tail: int = 3000) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-tail:]

    def cpu_seconds(self) -> float:
        """CPU (user + system) used so far by every live process of this group."""
        return group_cpu_seconds(self.popen.pid)

    def stop(self, grace: float = 10.0) -> None:
        if self.popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        self._signal(signal.SIGKILL)  # children that outlived their leader go with the group
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)  # read with output() before stopping

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def group_cpu_seconds(pgid: int) -> float:
    """Sum of utime + stime over the live processes of a process group (Linux /proc).

    On a machine shared with other work, wall-clock rates move with the neighbours' load;
    CPU seconds per event do not, so they are reported beside the rates.
    """
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields[0] is the state; pgrp is the 5th field of the stat line
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


def postgres_cpu_seconds(database: str) -> dict[int, float]:
    """CPU so far of each live PostgreSQL backend serving `database`, by pid (same host only).

    Backends that exit between two samples are missed: with a connection per request the
    figure is a lower bound; with persistent connections it is close to the whole cost.
    """
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
            if not cmd.startswith(b"postgres: ") or f" {database} ".encode() not in cmd:
                continue
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(entry)] = (int(fields[11]) + int(fields[12])) / _TICK
    return found


def child_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRAMATIQ_")}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("LOG_LEVEL", "WARNING")
    env.update({k: v for k, v in overrides.items() if v is not None})
    return env


def start_server(*, port: int, workers: int, env: Mapping[str, str], fast: bool = True, interface: str = "asgi") -> Proc:
    """uvicorn, `workers` processes: config.asgi (web + websockets), or config.wsgi in uvicorn's
    (deprecated) WSGI mode, where a fixed pool of 10 threads per process runs the views."""
    app = "config.wsgi:application" if interface == "wsgi" else "config.asgi:application"
    argv = [
        sys.executable, "-m", "uvicorn", app, "--interface", "wsgi" if interface == "wsgi" else "asgi3",
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--no-access-log", "--log-level", "warning", "--backlog", "4096",
    ]
    if fast:
        argv += ["--http", "httptools", "--loop", "uvloop"]
    return Proc("web", argv, env)


def start_workers(*, processes: int, threads: int, env: Mapping[str, str]) -> Proc:
    """`manage.py rundramatiq`: the dramatiq CLI with every app's tasks module."""
    argv = [
        sys.executable, "manage.py", "rundramatiq", "--processes", str(processes), "--threads", str(threads),
        "--worker-shutdown-timeout", "5000", "--skip-logging",
    ]
    return Proc("worker", argv, env)


def flush_broker(url: str) -> None:
    """Drop whatever a previous run left queued (a bench run owns its broker database/vhost)."""
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url, middleware=[])
        for queue in ("inbound", "maintenance", "outbound"):
            broker.declare_queue(queue)
        broker.flush_all()
        broker.close()
    else:
        import redis

        redis.Redis.from_url(url).flushdb()


# --- figures -------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def report(title: str, lines: Sequence[tuple[str, Any]], figures: Mapping[str, Any], *, as_json: bool) -> None:
    """The readable summary, then (with --json) the figures as one JSON object on the last line."""
    width = max(len(label) for label, _ in lines)
    print(title)
    print("-" * len(title))
    for label, value in lines:
        print(f"  {label.ljust(width)}  {value}")
    sys.stdout.flush()
    if as_json:
        print(json.dumps(dict(figures), sort_keys=True, default=str), flush=True)
