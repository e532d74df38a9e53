#!/usr/bin/env python3
"""Ingest end to end: signed webhooks → uvicorn → PostgreSQL → broker → dramatiq workers → tickets.

Phase 1 offers N events as fast as they are taken (a fixed number of keep-alive connections)
and measures events/s APPLIED end to end: first POST → last event processed (polled from the
database). Phase 2 offers events open-loop at a fixed rate (100/s by default) and measures the
webhook latency from each request's scheduled send time (so a stall is not hidden by the
generator waiting for it). Then every event answered 200 must have exactly one Message.

    python bench/ingest.py [--events 20000] [--broker redis://…|amqp://…] [--json]

The web side is `manage.py runweb` serving config.wsgi in uvicorn (the fastest setup measured on
a 2-core box; --interface asgi for config.asgi, --server uvicorn for `uvicorn --workers`, whose
processes share one socket and so the connections unevenly), the workers `manage.py rundramatiq`;
docs/benchmarks.md has the method, the figures and what limits them.

Runs on PostgreSQL from DATABASE_URL (default postgres://postgres@127.0.0.1:5432/omnidesk_bench,
created and migrated when missing; its data is reset at the start of every run).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

from _common import (
    bench_database_url,
    child_env,
    django_setup,
    ensure_database,
    flush_broker,
    free_port,
    percentile,
    postgres_cpu_seconds,
    report,
    reset_data,
    say,
    start_server,
    start_workers,
    wait_until_serving,
)

from omnidesk.devtools.traffic import Conn  # the keep-alive HTTP/1.1 client the scale-out test uses too

SLUG = "bench-api"
SECRET = "bench-secret"
HOST = "127.0.0.1"


# --- the events ----------------------------------------------------------------------------


@dataclass
class Event:
    external_id: str
    request: bytes  # the whole HTTP/1.1 request, built before the clock starts


def build_events(count: int, *, start: int, port: int, follow_ups: float, rng: random.Random) -> list[Event]:
    """New conversations (a new customer each) mixed with follow-ups on earlier ones."""
    from channels_plugins.api.client import sign

    threads: list[tuple[str, int]] = []  # (thread key, author number)
    events = []
    for i in range(start, start + count):
        if threads and rng.random() < follow_ups:
            thread, author = threads[rng.randrange(max(0, len(threads) - 2000), len(threads))]
            text = f"Any news on this? It has been a while. (follow-up {i})"
        else:
            thread, author = f"th-{i}", i
            threads.append((thread, author))
            text = f"My order #{100000 + i} has not arrived and the tracking page shows nothing."
        payload = {
            "id": f"ev-{i}",
            "thread": thread,
            "author": {"id": f"cust-{author}", "name": f"Customer {author}", "email": f"customer{author}@example.com"},
            "text": text,
            "sent_at": "2026-11-02T09:15:00Z",
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        head = (
            f"POST /hooks/{SLUG}/ HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nX-Omnidesk-Signature: {sign(SECRET, body)}\r\n\r\n"
        ).encode()
        events.append(Event(payload["id"], head + body))
    return events


@dataclass
class Sent:
    accepted: list[str] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    first_at: float = 0.0
    last_at: float = 0.0

    def record(self, event: Event, status: int | str, started: float, done: float) -> None:
        self.latencies_ms.append((done - started) * 1000)
        if status == 200:
            self.accepted.append(event.external_id)
        else:
            self.errors[str(status)] = self.errors.get(str(status), 0) + 1
        self.last_at = max(self.last_at, done)


async def send_one(conn: Conn, event: Event, sent: Sent, started: float) -> None:
    try:
        status: int | str = await conn.post(event.request)
    except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
        status = type(exc).__name__
    sent.record(event, status, started, time.perf_counter())


async def closed_loop(events: list[Event], *, port: int, concurrency: int) -> Sent:
    """Each connection sends its next event as soon as the previous one is answered."""
    sent = Sent(first_at=time.perf_counter())
    it = iter(events)

    async def lane() -> None:
        conn = Conn(port)
        for event in it:
            await send_one(conn, event, sent, time.perf_counter())
        conn.close()

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return sent


async def open_loop(events: list[Event], *, port: int, rate: float) -> Sent:
    """Send event i at t0 + i/rate whatever happened to the earlier ones; latency from that time."""
    idle = [Conn(port) for _ in range(8)]
    tasks = []
    sent = Sent()

    async def fire(event: Event, scheduled: float) -> None:
        conn = idle.pop() if idle else Conn(port)
        await send_one(conn, event, sent, scheduled)
        idle.append(conn)

    t0 = time.perf_counter() + 0.2
    sent.first_at = t0
    for i, event in enumerate(events):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(fire(event, scheduled)))
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.close()
    return sent


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_async(coro):  # type: ignore[no-untyped-def]
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


# --- watching the database -----------------------------------------------------------------


#: the tables every message reads and writes; their statistics decide the lookup plans
HOT_TABLES = (
    "inbox_inboundevent", "tickets_message", "tickets_ticketthread", "tickets_ticket", "tickets_ticketevent",
    "customers_identity", "customers_customer",
)


class Autoanalyze(threading.Thread):
    """Stands in for PostgreSQL's autovacuum when the server runs with `autovacuum = off`.

    Without statistics the planner finds a message by (account, external id) through the
    account index and filters every message of the account: each apply gets slower as the
    tables grow. A production server analyzes them on its own; so does this, looking every
    `every` s, and as autovacuum does it analyzes only the tables changed enough since their last
    ANALYZE (`Progress.analyze`). Analyzing all seven every 10 s whatever had changed cost
    PostgreSQL 0.4-1.9 s of CPU each time at 20,000 events, twice per phase 2: the webhooks' slow
    requests fell inside those ANALYZEs (docs/benchmarks.md).
    """

    def __init__(self, url: str, every: float) -> None:
        super().__init__(daemon=True, name="autoanalyze")
        self.url, self.every, self.stop = url, every, threading.Event()

    def run(self) -> None:
        progress = Progress(self.url)
        try:
            while not self.stop.wait(self.every):
                progress.analyze()
        finally:
            progress.conn.close()


class Progress:
    """Counts of stored and finished events, from a connection of its own."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True)

    def autovacuum_off(self) -> bool:
        return self.conn.execute("SHOW autovacuum").fetchone()[0] == "off"

    def analyze(self) -> None:
        """ANALYZE the hot tables autovacuum would analyze now: those with more rows inserted, updated
        or deleted since their last ANALYZE than autovacuum_analyze_threshold + _scale_factor × rows."""
        due = [name for (name,) in self.conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid"
            " WHERE c.relname = ANY(%s) AND s.n_mod_since_analyze > current_setting('autovacuum_analyze_threshold')::float8"
            " + current_setting('autovacuum_analyze_scale_factor')::float8 * greatest(c.reltuples, 0)",
            [list(HOT_TABLES)],
        )]
        if due:
            self.conn.execute("ANALYZE " + ", ".join(due))

    def counts(self) -> tuple[int, int, int]:
        stored, done, failed = self.conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status <> 'pending'), count(*) FILTER (WHERE status = 'failed')"
            " FROM inbox_inboundevent"
        ).fetchone()
        return int(stored), int(done), int(failed)

    def any_pending(self) -> bool:
        """Whether an event is still pending, read as the claim reads: through the (status, received_at)
        index, stopping at the first one (an EXISTS alone was planned as a scan of the table)."""
        return self.conn.execute(
            "SELECT 1 FROM inbox_inboundevent WHERE status = 'pending' ORDER BY received_at LIMIT 1"
        ).fetchone() is not None

    def wait_applied(self, expected: int, *, stall_s: float, label: str, count_every: float = 5.0) -> float:
        """Block until `expected` events are finished; the perf_counter time they were. Exit on a stall.

        Between the counts (every `count_every` s) it only asks whether any event is pending: counting
        the whole table every 50 ms cost PostgreSQL 9 ms a time at 12,000 events, a tenth of the 2
        cores the pipeline under test shares with it, and that CPU was counted as the pipeline's.
        """
        last_done, last_change, last_count = -1, time.perf_counter(), 0.0
        while True:
            now = time.perf_counter()
            if now - last_count >= count_every or not self.any_pending():
                stored, done, failed = self.counts()
                last_count = now
                if done >= expected:
                    return now
                if done != last_done:
                    last_done, last_change = done, now
                elif now - last_change > stall_s:
                    raise SystemExit(f"{label}: no progress for {stall_s:g}s at {done}/{expected} events applied")
                if count_every >= 1:
                    say(f"{label}: {done}/{expected} applied, {stored - done} pending, {failed} failed")
            time.sleep(0.05)


def start_workers_below_web(*, processes: int, threads: int, env: dict[str, str], nice: int):  # type: ignore[no-untyped-def]
    """The workers, with less CPU than the web's when both want it, as a deployment gives its worker
    service a lower CPU weight (docs/deploy.md). Each Proc is a session of its own, and so under Linux's
    autogroup scheduling a group of its own that the scheduler weighs equally with every other: a
    per-process nice changes nothing between the groups, the group's nice does (/proc/<pid>/autogroup)."""
    proc = start_workers(processes=processes, threads=threads, env=env)
    try:
        with open(f"/proc/{proc.popen.pid}/autogroup", "w") as f:
            f.write(str(nice))
    except OSError as exc:
        say(f"cannot lower the {proc.name}'s CPU weight: {exc}")
    return proc


def loss_and_duplicates(accepted: list[str]) -> dict[str, int]:
    from django.db import connection
    from django.db.models import Count

    from omnidesk.inbox.models import InboundEvent
    from omnidesk.tickets.models import Message

    have = set(Message.objects.filter(account__slug=SLUG).values_list("external_id", flat=True))
    lost = len(set(accepted) - have)
    dup_messages = sum(
        n - 1
        for n in Message.objects.values("account", "external_id")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .values_list("n", flat=True)
    )
    with connection.cursor() as cur:
        cur.execute(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM inbox_inboundevent"
            " GROUP BY account_id, md5(body) HAVING count(*) > 1) d"
        )
        dup_events = int(cur.fetchone()[0])
    return {
        "lost": lost,
        "duplicated": dup_messages + dup_events,
        "duplicate_messages": dup_messages,
        "duplicate_events": dup_events,
        "failed_events": InboundEvent.objects.filter(status="failed").count(),
        "messages": len(have),
        "tickets": Message.objects.filter(account__slug=SLUG).values("ticket").distinct().count(),
    }


def setup_account() -> None:
    from omnidesk.plugins.services import channel_account_save
    from omnidesk.routing.models import Group

    group = Group.objects.get_or_create(name="Support")[0]
    channel_account_save(
        kind="api", slug=SLUG, name="Bench widget", config={"callback_url": ""}, secrets={"secret": SECRET},
        default_group_id=group.pk,
    )


# --- main ----------------------------------------------------------------------------------


def main() -> None:
    cpus = os.cpu_count() or 2
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20_000, help="events in phase 1 (default 20000)")
    ap.add_argument("--follow-ups", type=float, default=0.3, help="share of follow-ups on earlier threads (0.3)")
    ap.add_argument("--concurrency", type=int, default=32, help="phase 1 connections (32)")
    ap.add_argument("--rate", type=float, default=100.0, help="phase 2 offered events/s (100)")
    ap.add_argument("--latency-seconds", type=float, default=20.0, help="phase 2 duration (20 s)")
    ap.add_argument("--broker", default=os.environ.get("OMNIDESK_BENCH_BROKER_URL", "redis://127.0.0.1:6379/2"),
                    help="dramatiq broker, redis:// or amqp:// (default redis://127.0.0.1:6379/2, flushed)")
    ap.add_argument("--channel-layer", default=os.environ.get("REDIS_URL", ""),
                    help="REDIS_URL for live updates from the workers (default $REDIS_URL; empty = in-memory)")
    ap.add_argument("--web-workers", type=int, default=cpus, help=f"uvicorn processes ({cpus})")
    ap.add_argument("--worker-processes", type=int, default=cpus, help=f"dramatiq processes ({cpus})")
    ap.add_argument("--worker-threads", type=int, default=2, help="dramatiq threads per process (2)")
    # Measured here: 10 applies 2-3x more events/s than the settings' default of 100, whose long
    # batch transactions queue behind each other's row locks and deadlock (docs/benchmarks.md).
    ap.add_argument("--batch", type=int, default=int(os.environ.get("OMNIDESK_APPLY_BATCH", "10")),
                    help="OMNIDESK_APPLY_BATCH for the workers ($OMNIDESK_APPLY_BATCH, else 10)")
    # Under ASGI each request runs its sync view in a thread of its own, so a persistent connection
    # is never reused: it lingers until PostgreSQL runs out of connection slots ("too many clients").
    # Measured here: config.wsgi in uvicorn's thread pool takes 2-3x the webhooks of config.asgi,
    # where each request runs in a new thread and so opens a new database connection.
    ap.add_argument("--interface", choices=["asgi", "wsgi"], default="wsgi",
                    help="uvicorn serving config.wsgi in a thread pool (default) or config.asgi")
    ap.add_argument("--web-conn-max-age", default=None,
                    help="DATABASE_CONN_MAX_AGE for the web processes (asgi: 0, a connection per request; wsgi: 60)")
    ap.add_argument("--worker-conn-max-age", default=os.environ.get("DATABASE_CONN_MAX_AGE"),
                    help="DATABASE_CONN_MAX_AGE for the workers (settings default when unset)")
    ap.add_argument("--no-fast-http", action="store_true", help="uvicorn's defaults instead of httptools + uvloop")
    ap.add_argument("--server", choices=("runweb", "uvicorn"), default="runweb",
                    help="manage.py runweb (a listening socket per process) or uvicorn --workers (one shared socket)")
    ap.add_argument("--keep-database", action="store_true",
                    help="migrate and empty the existing database instead of recreating it")
    ap.add_argument("--skip-phase2", action="store_true")
    ap.add_argument("--stagger", action="store_true",
                    help="diagnostic: start the workers only after phase 1 is sent, to measure web and workers apart")
    ap.add_argument("--analyze-every", type=float, default=10.0,
                    help="when the server has autovacuum off, ANALYZE the hot tables autovacuum would, looking this often (0: never)")
    ap.add_argument("--worker-nice", type=int, default=10,
                    help="the workers' CPU weight below the web processes' when both want the CPU: the nice of their "
                         "autogroup (Linux), as a deployment's lower CPU weight for the worker service (10; 0: equal)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true", help="last line: the figures as one JSON object")
    args = ap.parse_args()

    url = bench_database_url()
    ensure_database(url, recreate=not args.keep_database)
    say(f"database {url.rsplit('/', 1)[-1]}: migrating and resetting")
    django_setup(url)
    reset_data()
    setup_account()
    from django.db import connections

    connections.close_all()
    flush_broker(args.broker)

    port = free_port()
    db_name = urlparse(url).path.lstrip("/")
    rng = random.Random(args.seed)
    phase1 = build_events(args.events, start=0, port=port, follow_ups=args.follow_ups, rng=rng)
    n2 = 0 if args.skip_phase2 else int(args.rate * args.latency_seconds)
    phase2 = build_events(n2, start=args.events, port=port, follow_ups=args.follow_ups, rng=rng)
    # Everything this process holds so far (Django, the apps, the events) lives until the end: frozen, the
    # cyclic collector no longer walks it while the clock runs (as in config/wsgi.py). A full collection
    # of it took 123-174 ms in phase 2 at --events 2000: the event loop stalled, then sent the requests it
    # owed at once, and their latency counts from their scheduled time.
    gc.collect()
    gc.freeze()

    common = {"DATABASE_URL": url, "DRAMATIQ_BROKER_URL": args.broker, "REDIS_URL": args.channel_layer,
              "LOG_LEVEL": "WARNING"}
    if args.web_conn_max_age is None:
        args.web_conn_max_age = "0" if args.interface == "asgi" else "60"
    web_env = child_env(**common, DATABASE_CONN_MAX_AGE=args.web_conn_max_age)
    worker_env = child_env(**common, OMNIDESK_APPLY_BATCH=str(args.batch), DATABASE_CONN_MAX_AGE=args.worker_conn_max_age)
    web = worker = None
    progress = Progress(url)
    autoanalyze = None
    if progress.autovacuum_off() and args.analyze_every > 0:
        say(f"this PostgreSQL runs with autovacuum off: analyzing the pipeline's tables every {args.analyze_every:g}s")
        autoanalyze = Autoanalyze(url, args.analyze_every)
        autoanalyze.start()
    try:
        say(f"starting {args.web_workers} uvicorn process(es) on :{port} and "
            f"{args.worker_processes}×{args.worker_threads} dramatiq worker(s) on {args.broker.split('://')[0]}")
        web = start_server(port=port, workers=args.web_workers, env=web_env, fast=not args.no_fast_http,
                           interface=args.interface, balanced=args.server == "runweb")
        if not args.stagger:
            worker = start_workers_below_web(processes=args.worker_processes, threads=args.worker_threads,
                                             env=worker_env, nice=args.worker_nice)
        try:
            wait_until_serving(web, port)
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
        time.sleep(3)  # let every web and worker process finish importing before the clock starts
        if worker is not None and not worker.alive:
            raise SystemExit(f"the dramatiq worker died:\n{worker.output()}")

        say(f"phase 1: {len(phase1)} events over {args.concurrency} connections, as fast as they are taken")
        web_cpu0, worker_cpu0, gen_cpu0 = web.cpu_seconds(), worker.cpu_seconds() if worker else 0.0, own_cpu()
        pg_cpu0 = postgres_cpu_seconds(db_name)
        sent1 = run_async(closed_loop(phase1, port=port, concurrency=args.concurrency))
        accept_s = sent1.last_at - sent1.first_at
        gen_cpu = own_cpu() - gen_cpu0
        say(f"phase 1: {len(sent1.accepted)} accepted in {accept_s:.1f}s; waiting for the workers")
        drain_per_s = webhook_pg_ms = None
        if args.stagger:
            # Diagnostic: the webhook alone above, the workers alone below (from their first commit).
            webhook_pg_ms = round(sum(cpu - pg_cpu0.get(pid, 0.0) for pid, cpu in postgres_cpu_seconds(db_name).items())
                                  * 1000 / max(len(sent1.accepted), 1), 3)
            say(f"webhooks alone: PostgreSQL {webhook_pg_ms} ms CPU per event")
            worker = start_workers_below_web(processes=args.worker_processes, threads=args.worker_threads,
                                             env=worker_env, nice=args.worker_nice)
            first_done = progress.wait_applied(1, stall_s=60, label="worker start", count_every=0)
            worker_cpu0 = worker.cpu_seconds()  # leave out the start-up imports
            already = progress.counts()[1]
            drained_at = progress.wait_applied(len(sent1.accepted), stall_s=60, label="drain")
            drain_per_s = round((len(sent1.accepted) - already) / max(drained_at - first_done, 1e-6), 1)
            say(f"workers alone: {drain_per_s} events/s")
        applied_at = progress.wait_applied(len(sent1.accepted), stall_s=60, label="phase 1")
        applied_s = applied_at - sent1.first_at
        assert worker is not None
        done1 = max(len(sent1.accepted), 1)
        cpu_ms = {
            "web": round((web.cpu_seconds() - web_cpu0) * 1000 / done1, 2),
            "workers": round((worker.cpu_seconds() - worker_cpu0) * 1000 / done1, 2),
            "generator": round(gen_cpu * 1000 / done1, 2),
            "postgres": round(
                sum(cpu - pg_cpu0.get(pid, 0.0) for pid, cpu in postgres_cpu_seconds(db_name).items()) * 1000 / done1, 2
            ),
        }

        sent2 = Sent()
        if phase2:
            say(f"phase 2: {len(phase2)} events offered at {args.rate:g}/s")
            sent2 = run_async(open_loop(phase2, port=port, rate=args.rate))
            progress.wait_applied(len(sent1.accepted) + len(sent2.accepted), stall_s=60, label="phase 2")
        time.sleep(1)  # a last look after any in-flight duplicate would have landed
        for proc in (web, worker):
            if proc is not None and not proc.alive:
                raise SystemExit(f"{proc.name} died during the run:\n{proc.output()}")
    finally:
        for proc in (web, worker):
            if proc is not None:
                proc.stop()
        progress.conn.close()
        if autoanalyze is not None:
            autoanalyze.stop.set()

    integrity = loss_and_duplicates(sent1.accepted + sent2.accepted)
    errors = {k: sent1.errors.get(k, 0) + sent2.errors.get(k, 0) for k in {*sent1.errors, *sent2.errors}}
    figures = {
        "events_per_s": round(len(sent1.accepted) / applied_s, 1),
        "webhook_p50_ms": round(percentile(sent2.latencies_ms, 50), 2),
        "webhook_p99_ms": round(percentile(sent2.latencies_ms, 99), 2),
        "lost": integrity["lost"],
        "duplicated": integrity["duplicated"],
        "events": len(phase1),
        "accepted_per_s": round(len(sent1.accepted) / accept_s, 1),
        "saturated_p50_ms": round(percentile(sent1.latencies_ms, 50), 2),
        "saturated_p99_ms": round(percentile(sent1.latencies_ms, 99), 2),
        "workers_alone_per_s": drain_per_s,
        "webhooks_alone_postgres_ms": webhook_pg_ms,
        "cpu_ms_per_event": cpu_ms,
        "load_average": round(os.getloadavg()[0], 2),
        "worker_nice": args.worker_nice,
        "phase2_events": len(phase2),
        "phase2_rate": args.rate,
        "webhook_max_ms": round(max(sent2.latencies_ms, default=float("nan")), 2),
        "http_errors": errors,
        "failed_events": integrity["failed_events"],
        "tickets": integrity["tickets"],
        "setup": {
            "web_workers": args.web_workers, "worker_processes": args.worker_processes,
            "worker_threads": args.worker_threads, "batch": args.batch, "concurrency": args.concurrency,
            "broker": args.broker.split("://")[0], "channel_layer": "redis" if args.channel_layer else "in-memory",
            "http": f"uvicorn {args.interface}" + ("" if args.no_fast_http else " httptools+uvloop"),
            "web_conn_max_age": args.web_conn_max_age,
            "worker_conn_max_age": args.worker_conn_max_age if args.worker_conn_max_age is not None else "default",
            "cpus": os.cpu_count(),
            "autoanalyze": f"every {args.analyze_every:g}s (autovacuum off)" if autoanalyze else "server's",
        },
    }
    lines = [
        ("applied end to end (phase 1)", f"{figures['events_per_s']:.0f} events/s  "
                                         f"({len(sent1.accepted)} events in {applied_s:.1f}s)"),
        ("accepted by the webhook", f"{figures['accepted_per_s']:.0f} events/s  "
                                    f"(p50 {figures['saturated_p50_ms']} ms, p99 {figures['saturated_p99_ms']} ms "
                                    f"at {args.concurrency} connections)"),
        *([("workers alone (--stagger)", f"{drain_per_s} events/s")] if drain_per_s else []),
        (f"webhook latency at {args.rate:g}/s", f"p50 {figures['webhook_p50_ms']} ms, p99 {figures['webhook_p99_ms']} ms, "
                                                f"max {figures['webhook_max_ms']} ms ({len(phase2)} events)"),
        ("CPU per event (phase 1)", ", ".join(f"{k} {v} ms" for k, v in cpu_ms.items())
                                    + " (postgres: live backends only; Redis not counted)"),
        ("load average (1 min)", f"{figures['load_average']} on {os.cpu_count()} CPUs"),
        ("lost (200 but no message)", integrity["lost"]),
        ("duplicated", f"{integrity['duplicated']} ({integrity['duplicate_messages']} messages, "
                       f"{integrity['duplicate_events']} stored events)"),
        ("failed events / HTTP errors", f"{integrity['failed_events']} / {errors or 0}"),
        ("tickets", integrity["tickets"]),
        ("setup", ", ".join(f"{k}={v}" for k, v in figures["setup"].items())),
    ]
    report("bench/ingest.py", lines, figures, as_json=args.json)
    if integrity["lost"] or integrity["duplicated"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
