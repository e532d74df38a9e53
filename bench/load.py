#!/usr/bin/env python3
"""Mixed load for a fixed time: webhooks from every channel, agents claiming and replying, live websockets.

What runs: uvicorn (config.asgi, 2 processes) for the API, the webhooks and the websockets;
`manage.py rundramatiq` (2 processes × 2 threads) on a real broker; `manage.py run_scheduler`;
Redis as the channel layer; PostgreSQL. The generator, one asyncio process:

- webhooks offered open loop at --rate events/s, spread over the channels: the generic API,
  X (mentions and DMs), Facebook (comments and Messenger), phone (CTI hang-ups); e-mail is
  stored and nudged as the IMAP poller does (there is no e-mail webhook);
- --agents agents (50) in a loop: claim the next ticket (POST /api/v1/queue/next/), reply on
  its channel (a call-back note for phone), solve it; --think seconds between tickets;
- --listeners websocket clients (200, the agents among them) on /ws/queue/, split over two groups;
- a reply sink, in a process of its own: the fault tests' fake platforms (tests/faults/peers.py: the API
  channel's callback, X, Graph, an SMTP server), which accept every reply as the platforms do.

Figures: sustained events/s (applied during the window), API p99 (every agent request), websocket
delivery p99 (a claim's "claimed" update reaching every agent of the ticket's group, from the
moment the claim was answered), peak RSS per process and in total, CPU seconds per kind of process
and per applied event (the comparable figure on a shared machine), errors (HTTP answers other than
2xx and "nothing to claim", dropped websockets, failed events, replies not sent or sent twice).

    python bench/load.py [--seconds 60] [--rate 20] [--agents 50] [--listeners 200] [--json]

Runs on PostgreSQL from DATABASE_URL (default postgres://postgres@127.0.0.1:5432/omnidesk_bench_load,
recreated each run); --broker (default redis://127.0.0.1:6379/2) and --channel-layer (default
$REDIS_URL) must be Redis databases / a vhost of this run's own: the broker's is flushed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing.connection import Connection

from _common import (
    child_env, django_setup, ensure_database, flush_broker, free_port, percentile, port_open, postgres_cpu_seconds,
    report, reset_data, say, start_server, start_workers, wait_until,
)

from omnidesk.devtools.procs import Proc, start_scheduler
from omnidesk.devtools.traffic import Conn, Listener, http_request, quiet, session_for

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/omnidesk_bench_load"
PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20
GROUPS = ("Support", "Social")
#: channel kind → the group its tickets land in
GROUP_OF = {"api": "Support", "email": "Support", "phone": "Support", "twitter": "Social", "facebook": "Social"}
SECRETS = {"api": "load-api-secret", "phone": "load-phone-secret", "twitter": "load-consumer-secret",
           "facebook": "load-app-secret"}


# --- setup ---------------------------------------------------------------------------------


def sinks(http_url: str, smtp_port: int) -> dict[str, dict[str, object]]:
    """Each sending channel's account settings pointing its replies at the reply sink."""
    return {"api": {"callback_url": f"{http_url}/callback"},
            "email": {"smtp_host": "127.0.0.1", "smtp_port": smtp_port, "smtp_security": "none"},
            "twitter": {"api_base_url": http_url},
            "facebook": {"graph_url": http_url, "dry_run": False}}


def setup(agents: int, listeners: int, sink: dict[str, dict[str, object]]) -> tuple[dict[str, object], list[tuple[str, str, str]]]:
    """The channel accounts (kind → account), replying to `sink`, and `listeners` agents: (group, API token,
    session key)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from omnidesk.plugins.registry import all_plugins
    from omnidesk.plugins.services import channel_account_save
    from omnidesk.routing.models import Agent, Group

    groups = {name: Group.objects.create(name=name) for name in GROUPS}
    accounts = {}
    for kind, group in GROUP_OF.items():
        demo = all_plugins()[kind].demo_account()
        secrets = dict(demo.secrets)
        if kind in ("api", "phone"):
            secrets["secret"] = SECRETS[kind]
        elif kind == "twitter":
            secrets["consumer_secret"] = SECRETS[kind]
        elif kind == "facebook":
            secrets["app_secret"] = SECRETS[kind]
        config = {**demo.config, **sink.get(kind, {})}
        accounts[kind] = channel_account_save(kind=kind, slug=f"load-{kind}", name=f"Load {kind}", config=config,
                                              secrets=secrets, default_group_id=groups[group].pk)
    people = []
    for i in range(listeners):
        user = get_user_model().objects.create_user(f"load-agent-{i}")
        agent = Agent.objects.create(user=user, capacity=1000, presence="online")
        group = GROUPS[i % 2]
        agent.groups.set([groups[group]])
        people.append((group, Token.objects.create(user=user).key if i < agents else "", session_for(user)))
    return accounts, people


# --- webhooks from every channel -----------------------------------------------------------


def channel_payload(kind: str, n: int, now: datetime) -> tuple[bytes, dict[str, str]]:
    """One new conversation's first message on `kind`: (body, headers), signed as the vendor signs."""
    from channels_plugins.api.client import SIGNATURE_HEADER, sign
    from channels_plugins.facebook import webhook as fb
    from channels_plugins.twitter import webhook as x
    from channels_plugins.twitter.adapter import DEMO_USER_ID
    from channels_plugins.facebook.adapter import DEMO_PAGE

    stamp = int(now.timestamp())
    if kind == "api":
        payload: dict = {"id": f"load-{n}", "thread": f"load-t{n}", "text": f"Where is my order {n}?",
                         "author": {"id": f"load-u{n}", "name": f"Customer {n}"}, "sent_at": now.isoformat()}
        body = json.dumps(payload).encode()
        return body, {SIGNATURE_HEADER: sign(SECRETS[kind], body)}
    if kind == "phone":
        payload = {"event": "hangup", "call_id": f"load-{n}", "from": f"+4477009{n % 100000:05d}", "to": "201",
                   "direction": "in", "at": now.isoformat(), "duration_s": 0, "answered": False}
        body = json.dumps(payload).encode()
        return body, {SIGNATURE_HEADER: sign(SECRETS[kind], body)}
    if kind == "twitter":
        user = {"id": 2_000_000_000 + n, "id_str": str(2_000_000_000 + n), "name": f"Tweeter {n}",
                "screen_name": f"tweeter{n}", "followers_count": n % 5000}
        tweet_id = str((stamp * 1000 << 22) + n)
        payload = {"for_user_id": DEMO_USER_ID, "tweet_create_events": [{
            "created_at": now.strftime("%a %b %d %H:%M:%S +0000 %Y"), "id": int(tweet_id), "id_str": tweet_id,
            "text": f"@omnidesk_demo my train {n} was cancelled again", "in_reply_to_status_id_str": None,
            "user": user, "entities": {"urls": []}}]}
        body = json.dumps(payload).encode()
        return body, {x.SIGNATURE_HEADER: x.sign(SECRETS[kind], body)}
    if kind == "facebook":
        payload = {"object": "page", "entry": [{"id": DEMO_PAGE, "time": stamp * 1000, "messaging": [{
            "sender": {"id": str(4_000_000_000 + n)}, "recipient": {"id": DEMO_PAGE}, "timestamp": stamp * 1000,
            "message": {"mid": f"m_load-{n}", "text": f"The lamp {n} flickers"}}]}]}
        body = json.dumps(payload).encode()
        return body, {fb.SIGNATURE_HEADER: fb.sign(SECRETS[kind], body)}
    raise ValueError(kind)


def email_bytes(n: int, now: datetime) -> bytes:
    return (
        f"From: Customer {n} <customer{n}@example.com>\r\nTo: support@demo.omnidesk.invalid\r\n"
        f"Subject: Order {n} missing\r\nMessage-ID: <load-{n}@example.com>\r\n"
        f"Date: {now.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"My order {n} has not arrived.\r\n"
    ).encode()


@dataclass
class Tally:
    api_ms: list[float] = field(default_factory=list)
    webhook_ms: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    offered: Counter = field(default_factory=Counter)
    claims: dict[int, tuple[str, float]] = field(default_factory=dict)  # ticket → (group, claim answered at)
    replies: int = 0
    loop_lag_ms: list[float] = field(default_factory=list)


async def loop_lag(stop: asyncio.Event, tally: Tally, every: float = 0.05) -> None:
    """How late this generator's loop wakes: its clock times websocket delivery, so its lag is in the figure."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(every)
        tally.loop_lag_ms.append((time.perf_counter() - started - every) * 1000)


async def webhooks(port: int, rate: float, until: float, tally: Tally, email_queue: list[int]) -> None:
    """Open loop: event i is offered at t0 + i/rate on a free connection, the channels in turn."""
    kinds = itertools.cycle(["api", "twitter", "facebook", "phone", "email"])
    idle: list[Conn] = []
    tasks = []

    async def fire(kind: str, n: int) -> None:
        now = datetime.now(timezone.utc)
        body, headers = channel_payload(kind, n, now)
        request = http_request("POST", f"/hooks/load-{kind}/", port=port, body=body,
                               headers={"Content-Type": "application/json", **headers})
        conn = idle.pop() if idle else Conn(port)
        started = time.perf_counter()
        try:
            status: int | str = await conn.post(request)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            status = type(exc).__name__
        tally.webhook_ms.append((time.perf_counter() - started) * 1000)
        if status != 200:
            tally.errors[f"webhook {kind} {status}"] += 1
        idle.append(conn)

    t0 = time.monotonic()
    for n in itertools.count():
        at = t0 + n / rate
        if at >= until:
            break
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        kind = next(kinds)
        tally.offered[kind] += 1
        if kind == "email":
            email_queue.append(n)
        else:
            tasks.append(asyncio.ensure_future(fire(kind, n)))
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.close()


def email_poller(url: str, broker_url: str, queue: list[int], stop: threading.Event, tally: Tally) -> None:
    """What the IMAP poller does with each new mail: commit it as an InboundEvent, then nudge the workers."""
    from django.db import connection

    from omnidesk.devtools.procs import broker_client, nudge
    from omnidesk.inbox.services import inbound_event_store
    from omnidesk.plugins.contract import RawEvent
    from omnidesk.plugins.models import ChannelAccount

    broker = broker_client(broker_url, ("inbound",))
    account = ChannelAccount.objects.get(slug="load-email")
    try:
        while not (stop.is_set() and not queue):
            if not queue:
                time.sleep(0.05)
                continue
            n = queue.pop(0)
            try:
                event, _ = inbound_event_store(account=account, raw=RawEvent(body=email_bytes(n, datetime.now(timezone.utc))))
                nudge(broker, [event.pk])
            except Exception as exc:  # noqa: BLE001 - counted, the run goes on
                tally.errors[f"email store {type(exc).__name__}"] += 1
    finally:
        connection.close()
        broker.close()


# --- the platforms the replies go to ---------------------------------------------------------


def reply_sink(pipe: Connection) -> None:
    """The fault tests' fake platforms (API callback, X, Graph) and SMTP sink, answering every reply as the
    platforms do, in a process of its own so that answering does not slow the generator's loop, whose clock
    times websocket delivery. Sends (HTTP base URL, SMTP port), then, when told to stop, what was delivered:
    channel → (replies delivered, replies delivered more than once)."""
    from channels_plugins.facebook.adapter import DEMO_PAGE
    from channels_plugins.twitter.adapter import DEMO_USER_ID
    from tests.faults.peers import FakePlatforms, SmtpSink

    platforms = FakePlatforms(x_user_id=DEMO_USER_ID, page_id=DEMO_PAGE)
    smtp = SmtpSink(platforms.deliveries, platforms)
    pipe.send((platforms.url, smtp.port))
    pipe.recv()
    delivered, twice = Counter(), Counter()
    with platforms.deliveries.lock:
        for (channel, _), n in platforms.deliveries.delivered.items():
            delivered[channel] += 1
            twice[channel] += n > 1
    pipe.send({channel: (delivered[channel], twice[channel]) for channel in delivered})
    smtp.close()
    platforms.close()


# --- agents --------------------------------------------------------------------------------


async def agent(port: int, group: str, token: str, until: float, think: float, tally: Tally, rng: random.Random) -> None:
    """Claim the next ticket, answer it on its channel, solve it; again after a pause."""
    conn = Conn(port)
    auth = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    async def call(method: str, path: str, payload: dict | None = None) -> tuple[int, dict]:
        body = json.dumps(payload).encode() if payload is not None else b""
        started = time.perf_counter()
        try:
            status, answer = await conn.fetch(http_request(method, path, port=port, body=body, headers=auth))
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            tally.errors[f"api {path.split('/')[3]} {type(exc).__name__}"] += 1
            return 0, {}
        tally.api_ms.append((time.perf_counter() - started) * 1000)
        if status >= 400:
            tally.errors[f"api {method} {path.split('/')[3]} {status}: {answer[:120]!r}"] += 1
        return status, json.loads(answer) if answer and status < 300 else {}

    await asyncio.sleep(rng.random() * think)
    while time.monotonic() < until:
        status, ticket = await call("POST", "/api/v1/queue/next/")
        if status == 200:
            tally.claims[int(ticket["id"])] = (group, time.time())
            path = f"/api/v1/tickets/{ticket['id']}/"
            if ticket["channel"]["kind"] == "phone":
                status, _ = await call("POST", path + "notes/", {"text": "Called back, left a voicemail."})
            else:
                # the marker lets the reply sink count each reply's deliveries
                status, _ = await call("POST", path + "replies/", {"text": f"Sorry about that, we are on it. [r{ticket['id']}]"})
            tally.replies += 200 <= status < 300
            await call("PATCH", path, {"status": "solved"})
        await asyncio.sleep(think * (0.5 + rng.random()))
    conn.close()


# --- memory --------------------------------------------------------------------------------


class Memory(threading.Thread):
    """Peak RSS of every server process, and of all of them together, sampled every second.

    The pids are found once (a scan of /proc per process group, on a machine with hundreds of
    processes, was a fifth of the generator's samples, holding the GIL its event loop needs, and
    the generator's clock measures websocket delivery); a group's new pids are looked for again
    only when one of the known ones has gone."""

    def __init__(self, procs: list[Proc]) -> None:
        super().__init__(daemon=True, name="rss")
        self.procs, self.stop, self.peak, self.peak_total = procs, threading.Event(), {}, 0.0

    def run(self) -> None:
        pids: dict[str, list[int]] = {}
        while not self.stop.wait(1.0):
            total = 0.0
            for proc in self.procs:
                rss = _rss_mb(pids.get(proc.name, []))
                if proc.name not in pids or len(rss) < len(pids[proc.name]):
                    rss = proc.rss_mb()
                    pids[proc.name] = list(rss)
                for pid, mb in rss.items():
                    key = f"{proc.name}[{pid}]"
                    self.peak[key] = max(self.peak.get(key, 0.0), mb)
                    total += mb
            self.peak_total = max(self.peak_total, total)


def _rss_mb(pids: list[int]) -> dict[int, float]:
    """RSS of these processes (those still alive), from /proc/<pid>/statm."""
    found = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                found[pid] = int(f.read().split()[1]) * PAGE_MB
        except (OSError, IndexError, ValueError):
            continue
    return found


# --- main ----------------------------------------------------------------------------------


def ws_latencies(listeners: list[tuple[str, Listener]], tally: Tally) -> tuple[list[float], int]:
    """Delivery of each claim to every listener of its group, in ms from the claim's answer (the claim is
    committed just before it: an update that beat the answer counts 0); and how many never arrived."""
    latencies, missing = [], 0
    for group, listener in listeners:
        for ticket, (claim_group, answered_at) in tally.claims.items():
            if claim_group != group:
                continue
            at = listener.received.get((ticket, "claimed"))
            if at is None:
                missing += 1
            else:
                latencies.append(max(0.0, at - answered_at) * 1000)
    return latencies, missing


async def traffic(args, port: int, people, tally: Tally, email_queue: list[int]):  # type: ignore[no-untyped-def]
    stop = asyncio.Event()
    listeners = [(group, Listener("/ws/queue/", port, session)) for group, _, session in people]
    running = [asyncio.ensure_future(lst.run(stop)) for _, lst in listeners]
    await asyncio.wait_for(asyncio.gather(*(lst.connected.wait() for _, lst in listeners)), 120)
    say(f"{len(listeners)} websockets connected; {args.seconds:g}s of traffic")
    rng = random.Random(args.seed)
    until = time.monotonic() + args.seconds
    lag = asyncio.ensure_future(loop_lag(stop, tally))
    await asyncio.gather(
        webhooks(port, args.rate, until, tally, email_queue),
        *(agent(port, group, token, until, args.think, tally, rng) for group, token, _ in people if token),
    )
    await quiet([lst for _, lst in listeners], for_s=3, at_most_s=30)  # the last updates are on their way
    stop.set()
    await asyncio.gather(lag, *running, return_exceptions=True)
    for (_, lst), task in zip(listeners, running):
        if task.exception() is not None or lst.closed_with not in (1000, None):
            tally.errors[f"websocket dropped ({task.exception() or lst.closed_with})"] += 1
    return listeners


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="traffic duration (60)")
    ap.add_argument("--rate", type=float, default=20.0, help="webhook events offered per second, all channels (20)")
    ap.add_argument("--agents", type=int, default=50, help="agents claiming and replying (50)")
    ap.add_argument("--listeners", type=int, default=200, help="websocket clients, the agents among them (200)")
    ap.add_argument("--think", type=float, default=2.0, help="an agent's mean pause between tickets, s (2)")
    ap.add_argument("--broker", default=os.environ.get("OMNIDESK_BENCH_BROKER_URL", "redis://127.0.0.1:6379/2"),
                    help="dramatiq broker (flushed), default redis://127.0.0.1:6379/2")
    ap.add_argument("--channel-layer", default=os.environ.get("REDIS_URL", ""), help="Redis URL (default $REDIS_URL)")
    ap.add_argument("--layer", choices=["core", "pubsub"], default=os.environ.get("OMNIDESK_CHANNEL_LAYER", "pubsub"),
                    help="OMNIDESK_CHANNEL_LAYER: channels_redis' pub/sub layer (default) or its core layer")
    ap.add_argument("--ws-deflate", action="store_true",
                    help="let websockets negotiate permessage-deflate (uvicorn's default; off in Procfile/compose)")
    ap.add_argument("--web-workers", type=int, default=2)
    ap.add_argument("--worker-processes", type=int, default=2)
    ap.add_argument("--worker-threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true", help="last line: the figures as one JSON object")
    args = ap.parse_args()
    if not args.channel_layer:
        raise SystemExit("websockets across processes need Redis: set REDIS_URL or --channel-layer redis://…")
    if args.listeners < args.agents:
        raise SystemExit("--listeners counts the agents too: it must be at least --agents")

    url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    ensure_database(url, recreate=True)
    django_setup(url)
    reset_data()
    sink_pipe, child_pipe = multiprocessing.Pipe()
    sink = multiprocessing.get_context("spawn").Process(target=reply_sink, args=(child_pipe,), daemon=True, name="sink")
    sink.start()
    _, people = setup(args.agents, args.listeners, sinks(*sink_pipe.recv()))
    from django.db import connections

    connections.close_all()
    flush_broker(args.broker)

    port = free_port()
    common = {"DATABASE_URL": url, "DRAMATIQ_BROKER_URL": args.broker, "REDIS_URL": args.channel_layer,
              "OMNIDESK_CHANNEL_LAYER": args.layer}
    web_env = child_env(**common, DATABASE_POOL_MAX_SIZE="10",
                        UVICORN_WS_PER_MESSAGE_DEFLATE="true" if args.ws_deflate else "false")
    procs = [start_server(port=port, workers=args.web_workers, env=web_env),
             start_workers(processes=args.worker_processes, threads=args.worker_threads, env=child_env(**common)),
             start_scheduler(database_url=url, broker_url=args.broker, REDIS_URL=args.channel_layer,
                             OMNIDESK_CHANNEL_LAYER=args.layer, LOG_LEVEL="WARNING")]
    memory = Memory(procs)
    tally, email_queue, stop_email = Tally(), [], threading.Event()
    poller = threading.Thread(target=email_poller, args=(url, args.broker, email_queue, stop_email, tally), daemon=True)
    try:
        wait_until(lambda: port_open(port) or not procs[0].alive, timeout=60, what="uvicorn to listen")
        time.sleep(3)  # every process imported before the clock starts
        dead = [p for p in procs if not p.alive]
        if dead:
            raise SystemExit("\n".join(f"{p.name} died:\n{p.output()}" for p in dead))
        memory.start()
        poller.start()
        load0 = os.getloadavg()[0]
        applied0 = applied_count()
        cpu0 = cpu_seconds(procs, url)
        started = time.monotonic()
        listeners = asyncio.run(traffic(args, port, people, tally, email_queue))
        window_s = time.monotonic() - started
        applied = applied_count() - applied0
        cpu = {name: spent - cpu0[name] for name, spent in cpu_seconds(procs, url).items()}
        stop_email.set()
        poller.join(30)
        load1 = os.getloadavg()[0]
        backlog = wait_drained(timeout=120)
        unsent = wait_sent(timeout=60)
        for proc in procs:
            if not proc.alive:
                tally.errors[f"{proc.name} died"] += 1
    finally:
        memory.stop.set()
        for proc in procs:
            proc.stop()
        sink_pipe.send("stop")
        delivered = sink_pipe.recv() if sink_pipe.poll(10) else {}
        sink.join(10)

    failed = failed_events()
    if failed:
        tally.errors[f"inbound events failed: {failed}"] += failed
    ws_ms, ws_missing = ws_latencies(listeners, tally)
    if ws_missing:
        tally.errors["websocket updates never delivered"] += ws_missing
    twice = sum(n for _, n in delivered.values())
    if twice:
        tally.errors["replies delivered twice"] += twice
    if unsent:
        tally.errors["replies not sent"] += unsent
    errors = sum(tally.errors.values())
    figures = {
        "events_per_s": round(applied / window_s, 1),
        "api_p99_ms": round(percentile(tally.api_ms, 99), 1),
        "ws_p99_ms": round(percentile(ws_ms, 99), 1),
        "rss_mb": round(memory.peak_total, 1),
        "errors": errors,
        "replies_delivered": sum(n for n, _ in delivered.values()),
        # our processes, as in earlier sessions' figures; PostgreSQL's apart (its backends are only sampled)
        "cpu_ms_per_event": round((sum(cpu.values()) - cpu["postgres"]) * 1000 / max(applied, 1), 1),
        "postgres_ms_per_event": round(cpu["postgres"] * 1000 / max(applied, 1), 1),
        # the apply and the outbox's sends (of the replies, a quarter of the events here)
        "worker_ms_per_event": round(cpu["worker"] * 1000 / max(applied, 1), 1),
        "web_ms_per_request": round(cpu["web"] * 1000 / max(len(tally.api_ms) + len(tally.webhook_ms), 1), 1),
    }
    lines = [
        ("offered", f"{sum(tally.offered.values())} events in {args.seconds:g}s ({args.rate:g}/s: "
                    + ", ".join(f"{k} {v}" for k, v in sorted(tally.offered.items())) + ")"),
        ("applied during the window", f"{figures['events_per_s']} events/s; backlog after: {backlog} "
                                      f"(drained {'yes' if backlog == 0 else 'NO'})"),
        ("webhook latency", f"p50 {percentile(tally.webhook_ms, 50):.1f} ms, p99 {percentile(tally.webhook_ms, 99):.1f} ms"),
        ("agents' API", f"{len(tally.api_ms)} requests, p50 {percentile(tally.api_ms, 50):.1f} ms, "
                        f"p99 {figures['api_p99_ms']} ms; {len(tally.claims)} claims, {tally.replies} replies"),
        ("replies", f"{figures['replies_delivered']} delivered to the reply sink ("
                    + ", ".join(f"{k} {n}" for k, (n, _) in sorted(delivered.items()))
                    + f"), {twice} of them twice; {unsent} not sent 60 s after the window"),
        ("websocket delivery", f"{len(ws_ms)} updates to {len(listeners)} clients, p50 {percentile(ws_ms, 50):.1f} ms, "
                               f"p99 {figures['ws_p99_ms']} ms (claim answered → every agent of the group told); "
                               f"this generator's loop late by p50 {percentile(tally.loop_lag_ms, 50):.1f} ms, "
                               f"p99 {percentile(tally.loop_lag_ms, 99):.1f} ms"),
        ("CPU during the window", ", ".join(f"{k} {v:.1f} s" for k, v in cpu.items())
                                  + f"; {figures['cpu_ms_per_event']} ms per applied event, and PostgreSQL's "
                                  f"{figures['postgres_ms_per_event']} ms; workers {figures['worker_ms_per_event']} "
                                  f"ms per applied event; web {figures['web_ms_per_request']} ms per "
                                  "request (agents' and webhooks, the live updates they cause included)"),
        ("peak RSS", f"{figures['rss_mb']} MiB in total; " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(memory.peak.items()))),
        ("errors", f"{errors} {dict(tally.errors) or ''}"),
        ("setup", f"{args.web_workers} uvicorn (asgi), {args.worker_processes}×{args.worker_threads} workers, "
                  f"broker {args.broker.split('://')[0]}, channel layer {args.layer}, "
                  f"websocket deflate {'on' if args.ws_deflate else 'off'}"),
        ("load average (1 min)", f"{load0:.2f} at the start, {load1:.2f} at the end, on {os.cpu_count()} CPUs"),
    ]
    report("bench/load.py", lines, figures, as_json=args.json)


def cpu_seconds(procs: list[Proc], url: str) -> dict[str, float]:
    """CPU seconds so far of each kind of server process, of this generator and of the PostgreSQL backends
    serving the run (pooled and persistent connections: a backend that ends in the window is missed): on a
    shared machine the rates move with the neighbours' load, CPU per event much less."""
    from urllib.parse import urlparse

    return {**{proc.name: proc.cpu_seconds() for proc in procs}, "generator": sum(os.times()[:2]),
            "postgres": sum(postgres_cpu_seconds(urlparse(url).path.lstrip("/")).values())}


def applied_count() -> int:
    from omnidesk.inbox.models import InboundEvent

    return InboundEvent.objects.exclude(status="pending").count()


def failed_events() -> int:
    from omnidesk.inbox.models import InboundEvent

    return InboundEvent.objects.filter(status="failed").count()


def wait_sent(timeout: float) -> int:
    """Replies not yet sent after up to `timeout` s (0: the outbox caught up)."""
    from omnidesk.tickets.models import OutboundMessage

    deadline = time.monotonic() + timeout
    while (unsent := OutboundMessage.objects.exclude(status="sent").count()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return unsent


def wait_drained(timeout: float) -> int:
    """Pending events left after up to `timeout` s (0: the workers caught up)."""
    from omnidesk.inbox.models import InboundEvent

    deadline = time.monotonic() + timeout
    while (pending := InboundEvent.objects.filter(status="pending").count()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return pending


if __name__ == "__main__":
    main()
