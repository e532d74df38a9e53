#!/usr/bin/env python3
""""Next ticket" under contention: 50 agents claiming from 100,000 open tickets on PostgreSQL.

Phase A calls the service `queue_claim_next` from N threads (each its own connection); phase B
drives `POST /api/v1/queue/next/` with N closed-loop keep-alive clients (token auth; they reconnect
when answered `Connection: close`, as HTTP clients do) against `manage.py runweb` (uvicorn) serving config.asgi. Both report claims/s and p50/p99 latency, phase B also per web process
(how many connections each serves). After each phase its claims are checked (a ticket claimed twice,
by events or by what clients received, is a double claim) and handed back, so both phases start from
the same queue with agents holding nothing.

    python bench/claim.py [--tickets 100000] [--agents 50] [--seconds 15] [--reuse] [--json]

Runs on PostgreSQL from DATABASE_URL (default postgres://postgres@127.0.0.1:5432/omnidesk_bench_claim,
created and migrated when missing; its data is reset at the start of every run). --reuse keeps
the tickets and agents of an earlier run of the same size and only hands the claimed tickets back.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import threading
import time
from collections import Counter
from datetime import timedelta

from _common import (
    bench_django, child_env, free_port, percentile, postgres_cpu_seconds, report, reset_data, say, serving_pids,
    start_server, wait_until_serving,
)

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/omnidesk_bench_claim"
HOST = "127.0.0.1"


def setup(tickets: int, agents: int) -> list[tuple[int, str]]:
    """Tickets in one group, `agents` online agents with tokens; returns (user id, token)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from omnidesk.customers.models import Customer
    from omnidesk.plugins.services import channel_account_save
    from omnidesk.routing.models import Agent, Group
    from omnidesk.tickets.models import Ticket

    get_user_model().objects.filter(username__startswith="bench-agent-").delete()  # reset_data keeps users
    group = Group.objects.create(name="Support")
    account = channel_account_save(kind="api", slug="bench-claim", name="Bench", config={"callback_url": ""},
                                   secrets={"secret": "x"}, default_group_id=group.pk)
    customer = Customer.objects.create(display_name="Bench")
    now = timezone.now()
    priorities = ["low", "normal", "high", "urgent"]
    for start in range(0, tickets, 10_000):
        Ticket.objects.bulk_create(
            Ticket(subject=f"t{i}", origin_account=account, customer=customer, group=group, status="new",
                   priority=priorities[i % 4], sla_due_at=now + timedelta(seconds=(i * 7919) % 86_400),
                   customer_first_message_at=now)
            for i in range(start, min(tickets, start + 10_000))
        )
    out = []
    for i in range(agents):
        user = get_user_model().objects.create_user(f"bench-agent-{i}")
        agent = Agent.objects.create(user=user, capacity=tickets, presence="online")
        agent.groups.set([group])
        out.append((user.pk, Token.objects.create(user=user).key))
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    return out


def reuse(tickets: int, agents: int) -> list[tuple[int, str]] | None:
    """The agents of an earlier run with `tickets` and `agents`, its claims undone; None when it had another size.

    Building 100,000 tickets takes minutes on a busy machine; undoing a run's few thousand claims
    takes a second."""
    from omnidesk.routing.models import Agent
    from omnidesk.tickets.models import Ticket

    people = list(
        Agent.objects.filter(user__username__startswith="bench-agent-", user__auth_token__isnull=False)
        .order_by("user_id").values_list("user_id", "user__auth_token__key")
    )
    if len(people) != agents or Ticket.objects.count() != tickets:
        return None
    hand_back()
    return people


def hand_back() -> None:
    """Every claim undone: each phase starts from the same queue, its agents holding nothing (the
    capacity check counts what an agent holds; after phase A each held hundreds). VACUUM drops the
    claimed rows' dead index entries, as a fresh build has none."""
    from django.db import connection

    from omnidesk.tickets.models import Ticket, TicketEvent

    Ticket.objects.filter(assignee__isnull=False).update(assignee=None)
    TicketEvent.objects.filter(action="claimed").delete()
    with connection.cursor() as cur:
        cur.execute(f'VACUUM ANALYZE "{Ticket._meta.db_table}", "{TicketEvent._meta.db_table}"')


def check(received: list[int]) -> tuple[int, int]:
    """(double claims, lost claims) of a phase: a ticket with two claim events or received twice, and a
    ticket a client received that is not assigned in the database."""
    from omnidesk.tickets.models import Ticket, TicketEvent

    events = Counter(TicketEvent.objects.filter(action="claimed").values_list("ticket_id", flat=True))
    got = Counter(received)
    double = sum(1 for c in events.values() if c > 1) + sum(1 for c in got.values() if c > 1)
    assigned = set(Ticket.objects.filter(assignee__isnull=False).values_list("pk", flat=True))
    return double, len(got.keys() - assigned)


def phase_service(users: list[int], *, seconds: float, database: str) -> tuple[list[float], list[int], float, float]:
    """Latencies, claimed ids, seconds, and the PostgreSQL CPU of the threads' backends (sampled
    before they disconnect: a closed backend's CPU can no longer be read)."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from omnidesk.routing.queue import queue_claim_next

    people = list(get_user_model().objects.select_related("agent").filter(pk__in=users))
    latencies: list[list[float]] = [[] for _ in people]
    claimed: list[list[int]] = [[] for _ in people]
    connected, barrier, finished = (threading.Barrier(len(people) + 1) for _ in range(3))
    stop, sampled = threading.Event(), threading.Event()

    def work(n: int) -> None:
        try:
            connection.ensure_connection()
            connected.wait()
            barrier.wait()
            while not stop.is_set():
                t0 = time.perf_counter()
                ticket = queue_claim_next(user=people[n])
                latencies[n].append(time.perf_counter() - t0)
                if ticket is None:
                    return
                claimed[n].append(ticket.pk)
        finally:
            finished.wait()
            sampled.wait()
            connection.close()

    threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(len(people))]
    for t in threads:
        t.start()
    connected.wait()
    pg0 = postgres_cpu_seconds(database)
    barrier.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    finished.wait()
    elapsed = time.perf_counter() - began
    pg = _pg_cpu_since(pg0, database)
    sampled.set()
    for t in threads:
        t.join()
    return [x for xs in latencies for x in xs], [x for xs in claimed for x in xs], elapsed, pg


async def _client(port: int, token: str, deadline: float, lat: dict[int, list[float]], got: list[int], bad: Counter) -> None:
    """One agent: a claim, its answer, the next claim, on a keep-alive connection; when the server
    answers `Connection: close` it reconnects, as any HTTP client does, and the reconnect counts
    in the next claim's latency. Latencies are kept per connection (the client's port)."""
    request = (
        f"POST /api/v1/queue/next/ HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Token {token}\r\n"
        "Content-Length: 0\r\nAccept: application/json\r\n\r\n"
    ).encode()
    writer = None
    try:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            if writer is None:
                reader, writer = await asyncio.open_connection(HOST, port)
                mine = lat.setdefault(writer.get_extra_info("sockname")[1], [])
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1)) if b"ontent-" in head else 0
            body = await reader.readexactly(length) if length else b""
            mine.append(time.perf_counter() - t0)
            if re.search(rb"(?im)^connection: *close", head):
                writer.close()
                writer = None
            code = int(head.split(b" ", 2)[1])
            if code == 200:
                got.append(int(re.search(rb'"id":(\d+)', body).group(1)))
            elif code == 204:
                return
            else:
                bad[code] += 1
    finally:
        if writer is not None:
            writer.close()


def phase_http(
    tokens: list[str], *, port: int, seconds: float, web_pids: list[int]
) -> tuple[list[float], list[int], float, Counter, list[dict[str, float]]]:
    """Latencies, claimed ids, seconds, errors, and per web process its connections (the mean of
    samples every 0.5 s: they move when clients reconnect), claims and latencies."""
    lat: dict[int, list[float]] = {}
    got: list[int] = []
    bad: Counter = Counter()
    owners: dict[int, int] = {}
    samples: list[Counter] = []

    async def main() -> float:
        began = time.perf_counter()
        clients = asyncio.gather(*(_client(port, t, began + seconds, lat, got, bad) for t in tokens))
        await asyncio.sleep(min(1.0, seconds / 2))  # every client connected

        async def sample() -> None:
            while True:
                now = await asyncio.to_thread(serving_pids, web_pids, port)
                owners.update(now)
                samples.append(Counter(now.values()))
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample())
        await clients
        sampler.cancel()
        return time.perf_counter() - began

    elapsed = asyncio.run(main())
    by_pid: dict[int, list[list[float]]] = {}
    for client_port, xs in lat.items():
        by_pid.setdefault(owners.get(client_port, 0), []).append(xs)
    per_process = [
        {"pid": pid, "connections": round(sum(s[pid] for s in samples) / max(len(samples), 1), 1),
         "claims": sum(map(len, conns)),
         "p50_ms": round(percentile([x for xs in conns for x in xs], 50) * 1000, 1),
         "p99_ms": round(percentile([x for xs in conns for x in xs], 99) * 1000, 1)}
        for pid, conns in sorted(by_pid.items(), key=lambda item: -sum(map(len, item[1])))
    ]
    return [x for xs in lat.values() for x in xs], got, elapsed, bad, per_process


def _pg_cpu_since(before: dict[int, float], database: str) -> float:
    after = postgres_cpu_seconds(database)
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tickets", type=int, default=100_000)
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    ap.add_argument("--web-workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--interface", choices=("asgi", "wsgi"), default="asgi",
                    help="config.asgi, or config.wsgi in uvicorn's thread pool (persistent connections)")
    ap.add_argument("--server", choices=("runweb", "uvicorn"), default="runweb",
                    help="manage.py runweb (a listening socket per process) or uvicorn --workers (one shared socket)")
    ap.add_argument("--pool", type=int, default=16,
                    help="DATABASE_POOL_MAX_SIZE of each uvicorn process (0: a persistent connection per request thread)")
    ap.add_argument("--reuse", action="store_true", help="keep an earlier run's tickets and agents (same sizes)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    url = bench_django(DEFAULT_URL)
    people = reuse(args.tickets, args.agents) if args.reuse else None
    if people is None:
        reset_data()
        say(f"creating {args.tickets} tickets and {args.agents} agents")
        people = setup(args.tickets, args.agents)
    else:
        say(f"reusing {args.tickets} tickets and {args.agents} agents, their claims undone")
    load_before = os.getloadavg()

    database = url.rsplit("/", 1)[-1]
    say(f"phase A: the service, {args.agents} threads, {args.seconds:g}s")
    cpu0 = time.process_time()
    s_lat, s_got, s_elapsed, s_pg = phase_service([u for u, _ in people], seconds=args.seconds, database=database)
    s_cpu = {"python": time.process_time() - cpu0, "postgres": s_pg}
    s_double, s_lost = check(s_got)
    hand_back()

    port = free_port()
    pool = str(args.pool if args.interface == "asgi" else 0)
    server = start_server(port=port, workers=args.web_workers, interface=args.interface,
                          balanced=args.server == "runweb",
                          env=child_env(DATABASE_URL=url, LOG_LEVEL="WARNING", DATABASE_POOL_MAX_SIZE=pool))
    try:
        wait_until_serving(server, port)
        time.sleep(1.0)
        say(f"phase B: HTTP, {args.agents} closed-loop clients, {args.web_workers} web process(es) "
            f"({args.server}, {args.interface}), {args.seconds:g}s")
        pg0, web0, gen0 = postgres_cpu_seconds(database), server.cpu_seconds(), time.process_time()
        h_lat, h_got, h_elapsed, bad, per_process = phase_http(
            [t for _, t in people], port=port, seconds=args.seconds, web_pids=list(server.rss_mb()))
        h_cpu = {"web": server.cpu_seconds() - web0, "postgres": _pg_cpu_since(pg0, database),
                 "generator": time.process_time() - gen0}
    finally:
        server.stop()

    h_double, h_lost = check(h_got)
    double, lost = s_double + h_double, s_lost + h_lost
    load_after = os.getloadavg()
    figures = {
        "claims_per_s": round(len(h_got) / h_elapsed, 1),
        "claim_p50_ms": round(percentile(h_lat, 50) * 1000, 2),
        "claim_p99_ms": round(percentile(h_lat, 99) * 1000, 2),
        "service_claims_per_s": round(len(s_got) / s_elapsed, 1),
        "service_p50_ms": round(percentile(s_lat, 50) * 1000, 2),
        "service_p99_ms": round(percentile(s_lat, 99) * 1000, 2),
        # CPU per claim does not move with the neighbours' load (2 cores / CPU per claim = the ceiling)
        "service_cpu_ms": {k: round(v / max(len(s_got), 1) * 1000, 3) for k, v in s_cpu.items()},
        "http_cpu_ms": {k: round(v / max(len(h_got), 1) * 1000, 3) for k, v in h_cpu.items()},
        "double_claims": double,
        "lost_claims": lost,
        "http_errors": dict(bad),
        "http_per_process": per_process,
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in load_after],
    }
    lines = [
        ("tickets / agents", f"{args.tickets} / {args.agents}"),
        ("service (threads)", f"{figures['service_claims_per_s']} claims/s, p50 {figures['service_p50_ms']} ms, "
                              f"p99 {figures['service_p99_ms']} ms ({len(s_got)} claims)"),
        ("HTTP (closed loop)", f"{figures['claims_per_s']} claims/s, p50 {figures['claim_p50_ms']} ms, "
                               f"p99 {figures['claim_p99_ms']} ms ({len(h_got)} claims, errors {dict(bad)})"),
        ("HTTP per web process", "; ".join(
            f"{p['connections']} connections, {p['claims']} claims, p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms"
            + ("" if p["pid"] else " (connections too short to be sampled)")
            for p in per_process)),
        ("CPU per claim, service", ", ".join(f"{k} {v} ms" for k, v in figures["service_cpu_ms"].items())),
        ("CPU per claim, HTTP", ", ".join(f"{k} {v} ms" for k, v in figures["http_cpu_ms"].items())),
        ("double claims", double),
        ("claimed but not assigned", lost),
        ("load average before/after", f"{figures['load_avg_before']} / {figures['load_avg_after']}"),
    ]
    report("claim benchmark", lines, figures, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
