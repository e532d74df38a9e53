"""Shared by the bench/ scripts: the benchmark database, server and worker processes, figures.

Every bench script prints a readable summary and, with --json, one JSON object of its figures as
its LAST line of stdout. Progress goes to stderr so stdout stays the summary.
"""

from __future__ import annotations

import json
import math
import os
import sys
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


def bench_database_url(default: str = DEFAULT_DATABASE_URL) -> str:
    url = os.environ.get("DATABASE_URL") or default
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


def bench_django(default_url: str = DEFAULT_DATABASE_URL) -> str:
    """The bench database ($DATABASE_URL, else default_url): created if missing, Django set up on it, migrated."""
    url = bench_database_url(default_url)
    ensure_database(url)
    django_setup(url)
    return url


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


# --- processes (omnidesk/devtools/procs.py, shared with the service tests) ---------------------

from omnidesk.devtools.procs import (  # noqa: E402,F401
    Proc,
    free_port,
    group_cpu_seconds,
    port_open,
    real_broker,
    rundramatiq_argv,
    runweb_argv,
    serving_pids,
    uvicorn_argv,
    wait_until_serving,
)
from omnidesk.devtools.procs import child_env as _child_env  # noqa: E402
from omnidesk.devtools.procs import wait_until as _wait_until  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str, every: float = 0.1) -> None:
    """A bench script ends with a one-line reason, not a traceback."""
    _wait_until(predicate, timeout=timeout, what=what, every=every, error=SystemExit)


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


def child_env(**overrides: str | None) -> dict[str, str]:
    return _child_env(**{"LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"), **overrides})


def start_server(
    *, port: int, workers: int, env: Mapping[str, str], fast: bool = True, interface: str = "asgi", balanced: bool = False,
) -> Proc:
    """`workers` web processes serving config.asgi (web + websockets), or config.wsgi in a thread pool: with
    `balanced`, `manage.py runweb` (each connection accepted by the process holding the fewest, as
    docs/deploy.md recommends), else `uvicorn --workers` (whichever process wakes first). Wait for it
    with `wait_until_serving`."""
    if balanced:
        return Proc("web", runweb_argv(port=port, workers=workers, interface=interface, backlog=4096), env)
    return Proc("web", uvicorn_argv(port=port, workers=workers, interface=interface, fast=fast, backlog=4096), env)


def start_workers(*, processes: int, threads: int, env: Mapping[str, str]) -> Proc:
    return Proc("worker", rundramatiq_argv(processes=processes, threads=threads, shutdown_timeout_ms=5000, quiet=True), env)


def flush_broker(url: str) -> None:
    """Drop whatever a previous run left queued (a bench run owns its broker database/vhost)."""
    real_broker(url, ("inbound", "maintenance", "outbound")).close()


# --- figures -------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def machine_speed() -> float:
    """Seconds of CPU for a fixed pure-Python loop (10 million additions), measured after the run.
    The same code's CPU per claim or per event was 2-3 times higher on one machine of this kind than
    on another (docs/benchmarks.md, session 6): figures from different machines compare only with this."""
    started, total = time.process_time(), 0
    for i in range(10_000_000):
        total += i
    return round(time.process_time() - started, 2)


def report(title: str, lines: Sequence[tuple[str, Any]], figures: Mapping[str, Any], *, as_json: bool) -> None:
    """The readable summary, then (with --json) the figures as one JSON object on the last line;
    both end with the machine's speed (machine_speed)."""
    speed = machine_speed()
    lines = [*lines, ("machine speed", f"{speed} s CPU for 10M Python additions (less is quicker)")]
    figures = {**figures, "machine_loop_s": speed}
    width = max(len(label) for label, _ in lines)
    print(title)
    print("-" * len(title))
    for label, value in lines:
        print(f"  {label.ljust(width)}  {value}")
    sys.stdout.flush()
    if as_json:
        print(json.dumps(dict(figures), sort_keys=True, default=str), flush=True)
