"""The processes under test (web, workers, scheduler, pollers) and the private services a fault
test may stop: a Redis or RabbitMQ broker, a PostgreSQL cluster, a Dovecot. Nothing shared is ever
stopped.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.plugins.email.dovecot import DOVECOT, Dovecot
from tests.services.procs import Proc, base_env, free_port, port_open, start_asgi, start_worker, steady_port, wait_until

PROCESS_START_S = 60  # a cold Django start on a loaded 2-core box
#: sweeps tuned for a test that must finish in seconds, not minutes (the code paths are the stock ones)
FAST_SWEEPS = {
    "OMNIDESK_SWEEP_INTERVAL_S": "2",
    "OMNIDESK_SWEEP_PENDING_AFTER_S": "2",
    "OMNIDESK_OUTBOX_SWEEP_INTERVAL_S": "2",
    "OMNIDESK_OUTBOX_STALE_SENDING_S": "10",
    "LOG_LEVEL": "WARNING",
}


@dataclass
class Stack:
    """omnidesk's own processes on one database and one broker; `close()` stops them all."""

    database_url: str
    broker_url: str
    procs: dict[str, Proc] = field(default_factory=dict)
    dead: list[Proc] = field(default_factory=list)
    web_port: int = 0

    def env(self) -> dict[str, str]:
        return {**FAST_SWEEPS, "DRAMATIQ_BROKER_URL": self.broker_url}

    def web(self) -> Proc:
        self.web_port = free_port()
        return self._keep("web", start_asgi(port=self.web_port, database_url=self.database_url, **self.env()))

    def worker(self, name: str = "worker", *, threads: int = 2) -> Proc:
        extra = {k: v for k, v in self.env().items() if k != "DRAMATIQ_BROKER_URL"}
        return self._keep(name, start_worker(database_url=self.database_url, broker_url=self.broker_url,
                                             threads=threads, **extra))

    def scheduler(self) -> Proc:
        return self._keep("scheduler", self._manage("scheduler", "run_scheduler"))

    def pollers(self) -> Proc:
        return self._keep("pollers", self._manage("pollers", "run_pollers"))

    def _manage(self, name: str, command: str) -> Proc:
        env = base_env(DATABASE_URL=self.database_url, **self.env())
        return Proc(name, [sys.executable, "manage.py", command], env)

    def _keep(self, name: str, proc: Proc) -> Proc:
        old = self.procs.get(name)
        if old is not None:
            old.stop()
        self.procs[name] = proc
        return proc

    def start(self, *, pollers: bool = False, threads: int = 2) -> None:
        """Web, a worker (of `threads` threads), the scheduler (and the pollers), started together;
        returns once web listens."""
        self.web()
        self.worker(threads=threads)
        self.scheduler()
        if pollers:
            self.pollers()
        self.wait_web()

    def kill9(self, name: str) -> None:
        """SIGKILL one process group; it leaves the stack (its log is cleaned up by close())."""
        proc = self.procs.pop(name)
        proc.kill9()
        self.dead.append(proc)

    def wait_web(self) -> None:
        web = self.procs["web"]
        wait_until(lambda: port_open(self.web_port) or not web.alive, timeout=PROCESS_START_S, what="uvicorn to listen")
        assert web.alive, web.output()

    def assert_alive(self) -> None:
        for name, proc in self.procs.items():
            assert proc.alive, f"{name} died:\n{proc.output()}"

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{proc.output(3000)}" for name, proc in self.procs.items())

    def close(self) -> None:
        procs = [*self.procs.values(), *self.dead]
        for proc in procs:  # all asked at once, so their shutdowns overlap
            if proc.alive:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            proc.stop()


# --- a private Redis or RabbitMQ (the broker a test may stop) -----------------------------------


class PrivateRedis:
    """redis-server on a free loopback port, no persistence: a restart forgets every message."""

    def __init__(self) -> None:
        self.port = steady_port()
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server")
        assert server, "redis-server not installed"
        argv = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = Proc("redis", argv, base_env())
        wait_until(lambda: port_open(self.port), timeout=15, what="the private redis-server")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    destroy = stop  # nothing on disk


def redis_missing() -> str | None:
    return None if shutil.which("redis-server") else "redis-server not installed (apt-get install redis-server)"


RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


class PrivateRabbit:
    """A RabbitMQ node of its own: its own node name, AMQP and distribution ports, data and log
    directories, no plugins (the shared node's management port stays free). Stopped and started
    again on the same ports and data, it keeps what it had persisted, as a restarted server does."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="omnidesk-rabbit-"))
        self.port = steady_port()
        self.dist_port = next(p for p in iter(steady_port, None) if p != self.port)
        (self.dir / "enabled_plugins").write_text("[].\n")
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def start(self) -> None:
        env = base_env(
            RABBITMQ_NODENAME=f"omnidesk-{self.port}@localhost", RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"), RABBITMQ_LOG_BASE=str(self.dir / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq"), RABBITMQ_ADVANCED_CONFIG_FILE=str(self.dir / "advanced.config"),
            RABBITMQ_PID_FILE=str(self.dir / "pid"), ERL_CRASH_DUMP=str(self.dir / "erl_crash.dump"),
        )
        self.proc = Proc("rabbitmq", [RABBITMQ_SERVER], env)
        # A node boots in about 20 s on an idle 2-core box; the AMQP port opens last.
        wait_until(lambda: port_open(self.port) or not self.proc.alive, timeout=120, what="the private RabbitMQ node")
        assert self.proc.alive, f"the private RabbitMQ node died:\n{self.proc.output(3000)}"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(grace=15.0)  # a clean shutdown, like a service restart; killed after 15 s
            self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def rabbit_missing() -> str | None:
    return None if os.access(RABBITMQ_SERVER, os.X_OK) else "rabbitmq-server not installed (apt-get install rabbitmq-server)"


# --- a private PostgreSQL cluster ---------------------------------------------------------------


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else ""


def postgres_missing() -> str | None:
    if not (_pg_bin("initdb") and _pg_bin("pg_ctl") and shutil.which("pg_dump") and shutil.which("psql")):
        return "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin"
    if os.geteuid() != 0:
        return "a private PostgreSQL cluster is made as the postgres user: run as root"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres system user"
    return None


class PrivateCluster:
    """initdb in a temp dir, run as `postgres` on a free port; stop/start disturb nobody else."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="omnidesk-pg-"))
        os.chmod(self.dir, 0o755)
        self.port = steady_port()
        self.data = self.dir / "data"
        shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def url(self, name: str = "omnidesk") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60")
        self._as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"),
                          "-w", "-t", "30", "start")

    def stop(self) -> None:
        self._as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop", check=False)

    def load(self, source_url: str, name: str = "omnidesk") -> None:
        """A copy of `source_url` (schema and rows) as database `name`."""
        self._as_postgres(_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), name)
        dump = subprocess.run(["pg_dump", "--no-owner", "--no-privileges", source_url], capture_output=True, check=True,
                              timeout=120)
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", self.url(name)], input=dump.stdout, capture_output=True,
                       check=True, timeout=120)

    def log(self) -> str:
        path = self.dir / "log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _as_postgres(self, *argv: str, check: bool = True) -> None:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True, timeout=90,
                              cwd=self.dir)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")


# --- Dovecot restarted in place ------------------------------------------------------------------


def dovecot_restart(server: Dovecot, *, down_s: float) -> None:
    """Stop the private Dovecot's master (every session drops), wait, start it again on the same
    port with the same mail: UIDVALIDITY and UIDs survive, as on a real server restart."""
    pid = int((server.base / "run" / "master.pid").read_text().strip())
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not _alive(pid), timeout=15, what="dovecot to stop")
    # Dovecot 2.3 here leaves its imap sessions running after the master stops; a host restart
    # (or a crash) does not: end this instance's leftovers, found by their process title.
    for leftover in _instance_pids(f"dovecot-omnidesk-{server.port}/"):
        os.kill(leftover, signal.SIGTERM)
    time.sleep(down_s)
    with open(server.base / "restart.log", "ab") as out:
        subprocess.run([DOVECOT, "-c", str(server.base / "dovecot.conf")], stdin=subprocess.DEVNULL, stdout=out,
                       stderr=subprocess.STDOUT, timeout=30, check=True)
    wait_until(lambda: port_open(server.port), timeout=15, what="dovecot to listen again")


def _instance_pids(title_prefix: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(title_prefix.encode()):
                found.append(int(cmdline.parent.name))
        except OSError:
            continue  # gone meanwhile
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
