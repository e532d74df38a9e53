#!/usr/bin/env python3
"""Email ingest end to end: APPEND to a private Dovecot → poller (IMAP IDLE) → PostgreSQL → apply → tickets.

N customer mails (a new customer each) are APPENDed by a few IMAP connections at a fixed rate
(open loop; --rate 0 = as fast as they go). In this process a poller thread runs the real
`account_poll` with IDLE, and worker processes run `inbound_events_apply` in a loop. We record the
moment each APPEND was issued (by Message-ID) and read each ticket's creation time from the
database: latency = ticket created − APPEND issued. Then every mail must be exactly one message.
The CPU each part used (poller thread, workers, PostgreSQL, Dovecot) is reported per mail.

    python bench/email_ingest.py [--messages 2000] [--rate 250] [--workers 2] [--json]

Needs dovecot-imapd and root (Dovecot drops to its own users). PostgreSQL from DATABASE_URL
(default postgres://postgres@127.0.0.1:5432/omnidesk_bench, created and migrated when missing;
its data is reset at the start of every run).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from urllib.parse import urlparse

from _common import (
    ROOT,
    bench_database_url,
    django_setup,
    ensure_database,
    group_cpu_seconds,
    percentile,
    postgres_cpu_seconds,
    report,
    reset_data,
    say,
)

sys.path.insert(0, str(ROOT / "tests" / "plugins" / "email"))
from dovecot import PASSWORD, Dovecot, missing  # noqa: E402

ADDRESS = "support@bench.example"


def build_mail(n: int, run: str) -> tuple[str, bytes]:
    msgid = f"bench-{run}-{n}@customers.example"
    body = (
        f"From: Customer {n} <customer{n}.{run}@customers.example>\r\nTo: Support <{ADDRESS}>\r\n"
        f"Subject: Order {1000 + n} has not arrived\r\nDate: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
        f"Message-ID: <{msgid}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\nHello,\r\n\r\nmy order {1000 + n} has not arrived yet. Could you check"
        f" with the courier?\r\n\r\nThanks,\r\nCustomer {n}\r\n\r\nOn Mon, 13 Oct 2025 at 10:00, Shop <shop@example.com> wrote:\r\n"
        f"> Your order is on its way.\r\n"
    ).encode()
    return msgid, body


def process_cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    """utime + stime of a process (0 once it is gone); reaped adds its waited-for children's."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    used = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if reaped else 0)
    return used / os.sysconf("SC_CLK_TCK")


def dovecot_cpu_seconds(server: Dovecot) -> float:
    """The private Dovecot's CPU so far: its live processes (one group) and the children it reaped."""
    master = int((server.base / "run" / "master.pid").read_text().strip())
    return group_cpu_seconds(master) + process_cpu_seconds(master, reaped=True) - process_cpu_seconds(master)


class CpuMeter:
    """CPU seconds used per part of the pipeline between start() and stop(): on a shared machine
    the rates follow the neighbours' load, CPU per mail does not."""

    def __init__(self, server: Dovecot, database: str, worker_pids: list[int]) -> None:
        self.server, self.database, self.worker_pids = server, database, worker_pids
        self.poller = 0.0

    def sample(self) -> dict[str, float]:
        return {
            "workers": sum(process_cpu_seconds(pid) for pid in self.worker_pids),
            "postgres": sum(postgres_cpu_seconds(self.database).values()),
            "dovecot": dovecot_cpu_seconds(self.server),
        }

    def start(self) -> None:
        self.started, self.poller = self.sample(), 0.0

    def stop(self) -> dict[str, float]:
        end = self.sample()
        used = {part: end[part] - self.started[part] for part in end}
        used["poller"] = self.poller
        return used


def apply_worker(url: str, stop: object) -> None:
    """A worker process: apply pending inbound events until told to stop (what dramatiq workers do)."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.pop("DRAMATIQ_BROKER_URL", None)
    import django

    django.setup()
    from omnidesk.inbox.services import inbound_events_apply

    while not stop.is_set():  # type: ignore[attr-defined]
        done = inbound_events_apply(limit=50)
        if not (done.applied or done.failed or done.ignored or done.deferred):
            stop.wait(0.01)  # type: ignore[attr-defined]


def appender(server: Dovecot, user: str, mails: list[tuple[str, bytes]], start: float, interval: float,
             sent: dict[str, float]) -> None:
    with server.client(user) as client:
        for i, (msgid, raw) in mails:
            due = start + i * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent[msgid] = time.time()
            client.append("INBOX", raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=250.0, help="APPENDs per second (0 = as fast as possible)")
    parser.add_argument("--connections", type=int, default=4, help="IMAP connections appending")
    parser.add_argument("--workers", type=int, default=2, help="processes applying inbound events")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--recreate", action="store_true", help="drop and recreate the bench database first")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    problem = missing()
    if problem:
        raise SystemExit(f"cannot run: {problem}")
    url = bench_database_url()
    ensure_database(url, recreate=args.recreate)
    django_setup(url)
    reset_data()

    from django.db import close_old_connections

    from omnidesk.inbox.models import InboundEvent
    from omnidesk.inbox.polling import account_poll
    from omnidesk.plugins.services import account_plugin, channel_account_save
    from omnidesk.tickets.models import Message

    server = Dovecot.start(fast=True)
    say(f"dovecot on 127.0.0.1:{server.port}")
    user = server.new_user("bench")
    account = channel_account_save(
        kind="email", slug="bench-email", name="Bench mailbox",
        config={"address": ADDRESS, "imap_host": server.host, "imap_port": server.port, "imap_security": "none",
                "username": user, "idle_timeout_s": 30.0, "fetch_batch": 500, "ack": "seen"},
        secrets={"password": PASSWORD},
    )
    stop = threading.Event()
    errors: list[str] = []

    def poll_loop() -> None:
        while not stop.is_set():
            close_old_connections()
            began = time.thread_time()
            result = account_poll(account=account)
            meter.poller += time.thread_time() - began
            if result.error:
                errors.append(result.error)
                stop.wait(0.5)

    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    worker_stop = ctx.Event()
    workers = [ctx.Process(target=apply_worker, args=(url, worker_stop), daemon=True) for _ in range(args.workers)]
    for w in workers:
        w.start()
    meter = CpuMeter(server, urlparse(url).path.lstrip("/"), [w.pid for w in workers if w.pid])
    threads = [threading.Thread(target=poll_loop, name="poller", daemon=True)]
    for t in threads:
        t.start()
    time.sleep(3.0)  # the poller is connected and idling, the workers are up
    meter.start()

    run = time.strftime("%H%M%S")
    mails = [build_mail(n, run) for n in range(args.messages)]
    sent: dict[str, float] = {}
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    start = time.monotonic()
    shares = [[(i, mails[i]) for i in range(c, len(mails), args.connections)] for c in range(args.connections)]
    appenders = [
        threading.Thread(target=appender, args=(server, user, [(i, m) for i, m in share], start, interval, sent))
        for share in shares
    ]
    first_append = time.time()
    for t in appenders:
        t.start()
    for t in appenders:
        t.join()
    say(f"{len(sent)} mails appended in {time.monotonic() - start:.1f}s")

    ids = [m[0] for m in mails]
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        done = Message.objects.filter(account=account, external_id__in=ids).count()
        if done >= len(ids):
            break
        time.sleep(0.2)
    cpu = meter.stop()  # before the workers exit and the poller logs out
    stop.set()
    worker_stop.set()
    for w in workers:
        w.join(timeout=20)
    for t in threads:
        t.join(timeout=40)
    try:
        account_plugin(account).close()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        pass

    rows = list(Message.objects.filter(account=account, external_id__in=ids).values_list("external_id", "ticket__created_at"))
    seen: dict[str, int] = {}
    for external_id, _ in rows:
        seen[external_id] = seen.get(external_id, 0) + 1
    latencies = [created.timestamp() - sent[external_id] for external_id, created in rows if external_id in sent]
    last = max((created.timestamp() for _, created in rows), default=first_append)
    lost = len([i for i in ids if i not in seen])
    duplicated = sum(c - 1 for c in seen.values()) + max(
        0, InboundEvent.objects.filter(account=account).count() - len(ids)
    )
    elapsed = max(last - first_append, 1e-9)
    # The email side alone: APPEND → raw mail committed as an InboundEvent by the IDLE poller.
    import re

    stored_at: dict[str, float] = {}
    for body, received in InboundEvent.objects.filter(account=account).values_list("body", "received_at"):
        found = re.search(rb"Message-ID: <([^>]+)>", bytes(body))
        if found:
            stored_at[found.group(1).decode()] = received.timestamp()
    to_event = [stored_at[m] - sent[m] for m in sent if m in stored_at]
    stored_span = max(max(stored_at.values(), default=first_append) - first_append, 1e-9)
    figures = {
        "messages": len(ids),
        "offered_rate": args.rate,
        "messages_per_s": round(len(rows) / elapsed, 1),
        "p50_s": round(percentile(latencies, 50), 3),
        "p99_s": round(percentile(latencies, 99), 3),
        "max_s": round(max(latencies, default=float("nan")), 3),
        "stored_per_s": round(len(stored_at) / stored_span, 1),
        "event_p50_s": round(percentile(to_event, 50), 3),
        "event_p99_s": round(percentile(to_event, 99), 3),
        "lost": lost,
        "duplicated": duplicated,
        "poll_errors": len(errors),
        "cpu_ms_per_mail": {part: round(used / max(len(ids), 1) * 1000, 2) for part, used in cpu.items()},
        "load_average": float(open("/proc/loadavg").read().split()[0]),
    }
    server.stop()
    report(
        "email ingest: APPEND → IDLE poller → PostgreSQL → tickets",
        [
            ("messages", f"{len(ids)} (offered at {args.rate:g}/s; 0 = unpaced)" if args.rate else f"{len(ids)} (unpaced)"),
            ("throughput", f"{figures['messages_per_s']} messages/s (first APPEND → last ticket)"),
            ("latency p50 / p99 / max", f"{figures['p50_s']} s / {figures['p99_s']} s / {figures['max_s']} s"),
            ("APPEND → InboundEvent", f"{figures['stored_per_s']} mails/s stored; p50 {figures['event_p50_s']} s, "
                                      f"p99 {figures['event_p99_s']} s (the email plugin's part)"),
            ("lost / duplicated", f"{lost} / {duplicated}"),
            ("poll errors", "; ".join(errors[:3]) or "none"),
            ("CPU per mail", ", ".join(f"{part} {ms} ms" for part, ms in figures["cpu_ms_per_mail"].items())),
            ("load average (1 min)", figures["load_average"]),
        ],
        figures,
        as_json=args.json,
    )


if __name__ == "__main__":
    main()
