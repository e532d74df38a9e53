#!/usr/bin/env python
"""The incident detector's cost per run on PostgreSQL, with 1,000,000 messages in the table and N new ones.

    python bench/storm.py [--messages 1000000] [--new 0,100,1000,10000] [--storm-share 0.3] [--regenerate] [--json]

Data is generated once with COPY and reused (--regenerate starts again): `--messages` customer
messages over the last 7 days on 100,000 tickets, and the detector's state as if it had read them
all (per-term counts per bucket, its cursor at the last message). Each measured run then adds N new
messages written in the last minutes (`--storm-share` of them complaining about the app) and times
one `incidents_detect()`: read the N new messages, count their terms, link them, look for spikes,
open the incident, prune. Figures:
  run_ms_<N>        one detector run after N new messages
  per_message_ms_<N> the same per new message
  quiet_ms          a run with nothing new (the spike query and pruning alone)
  read_plan         how PostgreSQL reads the new messages (the primary key range, never a scan)
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import bench_django, report, reset_data, say  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/omnidesk_bench_storm"
TICKETS = 100_000
ORDINARY = [
    "Where is my parcel? It was due yesterday", "Please send me the invoice for my last order",
    "How do I change my delivery address?", "I was charged twice for order 1042, can I get a refund?",
    "I love the new app design, well done", "Can I pay by bank transfer instead of card?",
    "My password reset email never arrived", "Do you deliver to Ireland?", "How do I close my account?",
    "The statement for March is missing from my documents", "My card was declined at the shop",
    "Can I change the date of my appointment?",
]
STORM = ["your app is down again, can't log in", "The app keeps crashing when I try to log in",
         "app login broken since 9am", "Is the mobile app down? Login fails every time"]


class Copier:
    """COPY rows of a model: every column from one template instance (so new fields with defaults
    never break the bench), only the `varying` ones given per row."""

    def __init__(self, model: type, template: object, varying: tuple[str, ...]) -> None:
        from django.db import connection

        fields = [f for f in model._meta.concrete_fields if not f.primary_key]  # type: ignore[attr-defined]
        self.table = model._meta.db_table  # type: ignore[attr-defined]
        self.columns = [f.column for f in fields]
        base = {f.attname: f.get_db_prep_save(f.pre_save(template, add=True), connection) for f in fields}
        self.base = [base[f.attname] for f in fields]
        self.slots = [[f.attname for f in fields].index(name) for name in varying]

    def copy(self, rows: list[tuple]) -> None:  # type: ignore[type-arg]
        from django.db import connection

        sql = f"COPY {self.table} ({', '.join(self.columns)}) FROM STDIN"
        with connection.cursor() as cur, cur.connection.cursor().copy(sql) as copy:
            for row in rows:
                values = list(self.base)
                for slot, value in zip(self.slots, row):
                    values[slot] = value
                copy.write_row([v.adapted if hasattr(v, "adapted") else v for v in values])


MESSAGE_VARYING = ("ticket_id", "text", "sent_at", "received_at", "created_at")


def _message_copier(ticket_id: int, account_id: int) -> Copier:
    from omnidesk.tickets.models import Message

    template = Message(ticket_id=ticket_id, account_id=account_id, direction="in", kind="message", visibility="private",
                       event_type="message", sentiment=-0.3, state="received", received_at=datetime.now(timezone.utc))
    return Copier(Message, template, MESSAGE_VARYING)


def generate(total: int) -> None:
    from django.db import connection

    from omnidesk.customers.models import Customer
    from omnidesk.incidents.detection import bucket_of, detect_config
    from omnidesk.incidents.models import DetectorCursor
    from omnidesk.incidents.topics import sentiment_weight, terms_of
    from omnidesk.plugins.services import channel_account_save
    from omnidesk.tickets.models import Message, Ticket

    reset_data()
    account = channel_account_save(kind="api", slug="bench", name="bench", config={}, secrets={"secret": "s"})
    customer = Customer.objects.create(display_name="bench")
    now = datetime.now(timezone.utc)
    say(f"generating {TICKETS:,} tickets and {total:,} messages over 7 days with COPY")
    started = time.monotonic()
    tickets = Copier(Ticket, Ticket(subject="bench", status="open", origin_account=account, customer=customer), ("subject",))
    tickets.copy([(f"bench {n}",) for n in range(TICKETS)])
    first_ticket = Ticket.objects.order_by("pk").values_list("pk", flat=True).first()
    messages = _message_copier(first_ticket, account.pk)
    cfg = detect_config()
    counts: dict[tuple[str, datetime], list[float]] = defaultdict(lambda: [0, 0.0])
    terms = {text: terms_of(text) for text in ORDINARY}
    rng = random.Random(7)
    span = 7 * 86400 - 3600
    rows = []
    for n in range(total):
        text = ORDINARY[n % len(ORDINARY)]
        at = now - timedelta(seconds=3600 + span * (1 - n / total))
        rows.append((first_ticket + rng.randrange(TICKETS), text, at, at, at))
        for term in terms[text]:  # what the detector would have counted reading these
            pair = counts[(term, bucket_of(at, cfg.bucket_s))]
            pair[0] += 1
            pair[1] += sentiment_weight(-0.3)
        if len(rows) == 100_000:
            messages.copy(rows)
            rows = []
            say(f"  {n + 1:,} messages")
    messages.copy(rows)
    with connection.cursor() as cur, cur.connection.cursor().copy(
        "COPY incidents_termcount (term, bucket, count, weight) FROM STDIN"
    ) as copy:
        for (term, bucket), (n, w) in counts.items():
            copy.write_row((term, bucket, int(n), w))
    last = Message.objects.order_by("-pk").values_list("pk", flat=True).first()
    DetectorCursor.objects.update_or_create(name="detector", defaults={"last_message_id": last})
    with connection.cursor() as cur:
        cur.execute("ANALYZE tickets_ticket; ANALYZE tickets_message; ANALYZE incidents_termcount")
    say(f"generated in {time.monotonic() - started:.0f}s ({len(counts):,} term buckets)")


def add_new(count: int, storm_share: float, rng: random.Random) -> None:
    from omnidesk.plugins.models import ChannelAccount
    from omnidesk.tickets.models import Ticket

    account = ChannelAccount.objects.get(slug="bench")
    first_ticket = Ticket.objects.order_by("pk").values_list("pk", flat=True).first()
    now = datetime.now(timezone.utc)
    rows = []
    for n in range(count):
        text = rng.choice(STORM) if rng.random() < storm_share else rng.choice(ORDINARY)
        at = now - timedelta(seconds=rng.uniform(0, 600))
        rows.append((first_ticket + rng.randrange(TICKETS), text, at, at, now - timedelta(seconds=5)))
    _message_copier(first_ticket, account.pk).copy(rows)


def forget_recent() -> None:
    """Each N starts from the same state: no incidents, and the current window holds no earlier run's messages."""
    from omnidesk.incidents.models import Incident, RecentMessage, TermCount

    Incident.objects.all().delete()
    RecentMessage.objects.all().delete()
    TermCount.objects.filter(bucket__gte=datetime.now(timezone.utc) - timedelta(minutes=50)).delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--new", default="0,100,1000,10000", help="comma-separated N of new messages per run")
    parser.add_argument("--storm-share", type=float, default=0.3)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    bench_django(DEFAULT_URL)
    from omnidesk.incidents import detection
    from omnidesk.tickets.models import Message

    if args.regenerate or Message.objects.count() < args.messages:
        generate(args.messages)
    detection.MAX_BATCHES = 1000  # one run takes the whole N, so the figure is the cost of N
    rng = random.Random(11)
    figures: dict[str, object] = {"messages": Message.objects.count()}
    lines = [("messages in the table", f"{figures['messages']:,}")]
    for n in [int(x) for x in args.new.split(",") if x.strip()]:
        detection.incidents_detect(settle_s=0)  # drain anything left by a previous run
        forget_recent()
        add_new(n, args.storm_share, rng)
        started = time.monotonic()
        result = detection.incidents_detect(settle_s=0)
        ms = (time.monotonic() - started) * 1000
        key = "quiet_ms" if n == 0 else f"run_ms_{n}"
        figures[key] = round(ms, 1)
        if n:
            figures[f"per_message_ms_{n}"] = round(ms / n, 3)
        from omnidesk.incidents.models import Incident

        titles = "; ".join(Incident.objects.filter(pk__in=result.opened).values_list("title", flat=True))
        lines.append((f"run with {n:,} new", f"{ms:,.1f} ms (read {result.read:,}, opened {len(result.opened)}"
                                            + (f": {titles}" if titles else "") + ")"))
    last = Message.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    plan = Message.objects.filter(pk__gt=last - 100, created_at__lte=datetime.now(timezone.utc)).order_by("pk").values(
        "pk", "text")[: detection.BATCH].explain()
    figures["read_plan"] = " ".join(plan.split())[:200]
    figures["loadavg"] = open("/proc/loadavg").read().split()[:3]
    lines += [("read plan", figures["read_plan"]), ("load average", " ".join(figures["loadavg"]))]  # type: ignore[arg-type]
    report("Incident detector on PostgreSQL", lines, figures, as_json=args.json)


if __name__ == "__main__":
    main()
