"""Customer traffic for the fault tests: one account per channel, events shaped and signed as each
platform sends them, a sender that retries like a platform does, and the tally every test prints.

Every event carries a unique external id, so "lost" and "duplicated" are counted per event, from
the database the processes under test wrote to (read with plain SQL: it may be a private cluster).
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

from typing import Any

import psycopg

from channels_plugins.api.client import sign as api_sign
from channels_plugins.facebook import webhook as fb_webhook
from channels_plugins.twitter import webhook as x_webhook

from tests.services.procs import wait_until

from .peers import Deliveries
from .stack import PROCESS_START_S, Stack

X_OWN_ID = "1072250532645998596"
FB_PAGE = "1234567890321"
ADDRESS = "support@desk.example"
SECRETS = {
    "api": {"secret": "api-s3cret"},
    "twitter": {"consumer_key": "ck", "consumer_secret": "x-consumer-secret", "access_token": "at",
                "access_token_secret": "ats"},
    "facebook": {"page_access_token": "EAAB-token", "app_secret": "fb-app-secret", "verify_token": "fb-verify"},
    "phone": {"secret": "phone-s3cret"},
    "email": {"password": "secret"},  # the private Dovecot's static password
}
PUSH_CHANNELS = ("api", "twitter", "facebook", "phone")


def desk_accounts(*, platforms_url: str, smtp_port: int = 0, imap_port: int = 0, mailbox: str = "") -> dict[str, int]:
    """One enabled account per channel (slug = kind), talking to the fake platforms; kind → pk."""
    from omnidesk.plugins.services import channel_account_save
    from omnidesk.routing.models import Group

    group = Group.objects.get_or_create(name="Support")[0]
    configs = {
        "api": {"callback_url": f"{platforms_url}/callback", "timeout_s": 5.0},
        "twitter": {"user_id": X_OWN_ID, "username": "acme", "api_base_url": platforms_url, "timeout_s": 5.0,
                    "poll_enabled": False},
        "facebook": {"page_id": FB_PAGE, "graph_url": platforms_url, "timeout_s": 5.0},
        "phone": {"default_region": "GB"},
    }
    if imap_port or smtp_port:
        configs["email"] = {
            "address": ADDRESS, "imap_host": "127.0.0.1", "imap_port": imap_port, "imap_security": "none",
            "username": mailbox, "smtp_host": "127.0.0.1", "smtp_port": smtp_port, "smtp_security": "none",
            "smtp_username": "", "ack": "seen", "idle_timeout_s": 3.0, "timeout_s": 10.0,
            "enabled_fetch": bool(imap_port),
        }
    return {
        kind: channel_account_save(kind=kind, slug=f"acme-{kind}", name=kind, config=config, secrets=SECRETS[kind],
                                   default_group_id=group.pk).pk
        for kind, config in configs.items()
    }


# --- events, as each platform sends them -------------------------------------------------------


@dataclass(frozen=True)
class Hook:
    channel: str
    external_id: str
    body: bytes
    headers: dict[str, str]


def _ago(minutes: int = 1) -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=minutes)


def api_hook(n: int, tag: str) -> Hook:
    ext = f"{tag}-api-{n}"
    body = json.dumps({"id": ext, "thread": f"{tag}-api-t{n}", "text": f"Where is parcel {n}?",
                       "author": {"id": f"{tag}-u{n}", "name": "Ada", "email": f"ada{n}@example.com"},
                       "sent_at": _ago().isoformat()}).encode()
    return Hook("api", ext, body, {"X-Omnidesk-Signature": api_sign(SECRETS["api"]["secret"], body)})


def x_hook(n: int, tag: str) -> Hook:
    ext = str(1_600_000_000_000_000_000 + 100_000 * (zlib.crc32(tag.encode()) % 10_000) + n)
    user = {"id": 700 + n, "id_str": str(700 + n), "name": f"Rider {n}", "screen_name": f"rider{n}",
            "followers_count": 10 * n, "verified": False}
    tweet = {"created_at": _ago().strftime("%a %b %d %H:%M:%S +0000 %Y"), "id": int(ext), "id_str": ext,
             "text": f"@acme train {n} cancelled again", "in_reply_to_status_id_str": None, "user": user,
             "entities": {"urls": []}}
    body = json.dumps({"for_user_id": X_OWN_ID, "tweet_create_events": [tweet]}).encode()
    return Hook("twitter", ext, body,
                {x_webhook.SIGNATURE_HEADER: x_webhook.sign(SECRETS["twitter"]["consumer_secret"], body)})


def fb_hook(n: int, tag: str) -> Hook:
    ext = f"m_{tag}-{n}"
    ms = int(_ago().timestamp() * 1000)
    event = {"sender": {"id": str(4_000_000 + n)}, "recipient": {"id": FB_PAGE}, "timestamp": ms,
             "message": {"mid": ext, "text": f"My lamp {n} flickers"}}
    body = json.dumps({"object": "page", "entry": [{"id": FB_PAGE, "time": ms, "messaging": [event]}]}).encode()
    return Hook("facebook", ext, body,
                {fb_webhook.SIGNATURE_HEADER: fb_webhook.sign(SECRETS["facebook"]["app_secret"], body)})


def phone_hook(n: int, tag: str) -> Hook:
    ext = f"{tag}-call-{n}"
    body = json.dumps({"event": "hangup", "call_id": ext, "from": f"07700 9{n:05d}", "to": "201", "direction": "in",
                       "at": _ago(3).isoformat(), "duration_s": 60, "answered": True, "caller_name": "Mary"}).encode()
    return Hook("phone", ext, body, {"X-Omnidesk-Signature": api_sign(SECRETS["phone"]["secret"], body)})


BUILDERS = {"api": api_hook, "twitter": x_hook, "facebook": fb_hook, "phone": phone_hook}


def hooks(count: int, tag: str, channels: tuple[str, ...] = PUSH_CHANNELS) -> list[Hook]:
    """`count` events, the channels taking turns."""
    turn = itertools.cycle(channels)
    return [BUILDERS[next(turn)](n, tag) for n in range(count)]


def mail(n: int, tag: str) -> tuple[str, bytes]:
    """(Message-ID without brackets, raw mail) of a customer's email."""
    msgid = f"{tag}-{n}@customer.example"
    raw = (f"From: Customer {n} <c{n}@customer.example>\r\nTo: {ADDRESS}\r\nSubject: Order {n}\r\n"
           f"Date: {format_datetime(_ago())}\r\nMessage-ID: <{msgid}>\r\nMIME-Version: 1.0\r\n"
           f"Content-Type: text/plain; charset=utf-8\r\n\r\nWhere is order {n}?\r\n").encode()
    return msgid, raw


@dataclass
class Mailbox:
    """Customers' mail delivered into a Dovecot mailbox; `sent` holds the Message-IDs."""

    server: Any
    user: str
    tag: str
    sent: set[str] = field(default_factory=set)

    def deliver(self, numbers: range) -> None:
        for n in numbers:
            msgid, raw = mail(n, self.tag)
            self.server.append(self.user, raw)
            self.sent.add(msgid)


# --- a platform delivering webhooks -------------------------------------------------------------


@dataclass
class Sender:
    """POSTs hooks to /hooks/<slug>/ and retries 5xx and refused connections, honouring Retry-After."""

    port: int
    statuses: Counter[int] = field(default_factory=Counter)
    #: (status, Retry-After) of every 503
    unavailable: list[str] = field(default_factory=list)
    accepted: dict[str, set[str]] = field(default_factory=dict)
    bodies_500: list[bytes] = field(default_factory=list)
    max_wait_s: float = 2.0

    def deliver(self, hook: Hook, *, give_up_after_s: float = 120.0) -> None:
        content = self.post(f"/hooks/acme-{hook.channel}/", hook.body, hook.headers, give_up_after_s=give_up_after_s)
        self.accepted.setdefault(hook.channel, set()).add(hook.external_id)
        assert json.loads(content)["status"] == "accepted", content

    def post(self, path: str, body: bytes, headers: dict[str, str], *, give_up_after_s: float = 120.0,
             ok: tuple[int, ...] = (200,)) -> bytes:
        """POST until answered with one of `ok`, retrying what a platform retries; the answer's body."""
        deadline = time.monotonic() + give_up_after_s
        while True:
            status, retry_after, content = self._post(path, body, headers)
            self.statuses[status] += 1
            if status in ok:
                return content
            if status == 503:
                self.unavailable.append(retry_after)
            if status == 500:
                self.bodies_500.append(content[:500])
            if status not in (0, 500, 502, 503, 504) or time.monotonic() > deadline:
                raise AssertionError(f"POST {path}: gave up at {status} {content[:300]!r}")
            wait = float(retry_after) if retry_after.isdigit() else 0.5
            time.sleep(min(wait, self.max_wait_s))

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
            resp = conn.getresponse()
            return resp.status, resp.getheader("Retry-After") or "", resp.read()
        except OSError as exc:  # refused or reset: the platform retries later
            return 0, "", str(exc).encode()
        finally:
            conn.close()

    def stream(self, items: list[Hook], *, per_s: float) -> threading.Thread:
        """Deliver `items` in a thread at about `per_s` events a second."""

        def run() -> None:
            for hook in items:
                started = time.monotonic()
                self.deliver(hook)
                time.sleep(max(0.0, 1.0 / per_s - (time.monotonic() - started)))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread


# --- what happened ------------------------------------------------------------------------------


@dataclass
class Tally:
    """Counted from the database the processes under test used."""

    stored: int
    pending: int
    failed: int
    applied: dict[str, Counter[str]]
    replies: dict[str, int]

    @classmethod
    def read(cls, database_url: str) -> Tally:
        with psycopg.connect(database_url, connect_timeout=5) as conn:
            events = dict(conn.execute("select status, count(*) from inbox_inboundevent group by status").fetchall())
            applied: dict[str, Counter[str]] = {}
            rows = conn.execute(
                "select a.kind, m.external_id from tickets_message m join plugins_channelaccount a on a.id = m.account_id"
                " where m.direction = 'in'"
            ).fetchall()
            for kind, ext in rows:
                applied.setdefault(kind, Counter())[ext] += 1
            replies = dict(conn.execute("select status, count(*) from tickets_outboundmessage group by status").fetchall())
        return cls(stored=sum(events.values()), pending=events.get("pending", 0), failed=events.get("failed", 0),
                   applied=applied, replies=replies)

    def __str__(self) -> str:
        applied = sum(map(len, self.applied.values()))
        return f"stored {self.stored}, pending {self.pending}, failed {self.failed}, applied {applied}, replies {self.replies}"

    def applied_ids(self) -> set[tuple[str, str]]:
        return {(kind, ext) for kind, exts in self.applied.items() for ext in exts}


def applied_count(database_url: str) -> int:
    return sum(map(len, Tally.read(database_url).applied.values()))


def wait_applied(stack: Stack, database_url: str, count: int) -> None:
    """Until `count` messages are applied (the worker is up and working), or fail if it died."""
    worker = stack.procs["worker"]
    wait_until(lambda: applied_count(database_url) >= count or not worker.alive, timeout=PROCESS_START_S,
               what=f"the worker to apply {count} events")
    stack.assert_alive()


def all_through(database_url: str, sent: dict[str, set[str]], replies: dict[int, str], deliveries: Deliveries) -> bool:
    """Every event offered is applied, every reply has reached its platform AND the outbox knows it.

    A platform may hold a reply sent before a crash (the kill test): it counts as reached while its
    outbox row is still `sending` until the stale claim is resent, so the rows must say `sent` too.
    """
    offered = {(kind, ext) for kind, exts in sent.items() for ext in exts}
    tally = Tally.read(database_url)
    outbox_through = not replies or tally.replies == {"sent": len(replies)}
    return offered <= tally.applied_ids() and deliveries.markers() >= set(replies) and outbox_through


def drain(stack: Stack, database_url: str, sent: dict[str, set[str]], replies: dict[int, str], deliveries: Deliveries,
          *, timeout: float, what: str) -> tuple[float, Tally]:
    """Wait until everything is through (or a process died); (monotonic time it was, the final tally).

    A moment more is left for a second delivery of anything to show up before the tally is read.
    """
    wait_until(lambda: all_through(database_url, sent, replies, deliveries)
               or not all(p.alive for p in stack.procs.values()), timeout=timeout, what=what, every=0.5)
    through_at = time.monotonic()
    time.sleep(1.5)
    stack.assert_alive()
    return through_at, Tally.read(database_url)


def ledger(name: str, *, sent: dict[str, set[str]], tally: Tally, replies: dict[int, str] | None = None,
           deliveries: Deliveries | None = None) -> tuple[int, int]:
    """Print sent / stored / applied / sent-out and return (lost, duplicated) over events and replies."""
    offered = {(kind, ext) for kind, exts in sent.items() for ext in exts}
    applied = tally.applied_ids()
    lost = offered - applied
    dup_events = {(kind, ext): n for kind, c in tally.applied.items() for ext, n in c.items() if n > 1}
    line = (f"[{name}] sent {len(offered)} ({', '.join(f'{k} {len(v)}' for k, v in sorted(sent.items()))}) / "
            f"stored {tally.stored} (pending {tally.pending}, failed {tally.failed}) / applied {len(applied & offered)}")
    lost_replies: set[int] = set()
    dup_replies: dict[tuple[str, int], int] = {}
    if replies is not None and deliveries is not None:
        out = deliveries.markers()
        lost_replies = set(replies) - out
        dup_replies = deliveries.duplicated()
        resent = sum(deliveries.deduplicated.values())
        line += (f" / replies {len(replies)}: sent-out {len(out & set(replies))}"
                 f" (resent and deduplicated by the receiver: {resent}) {tally.replies}")
    line += f" / lost {len(lost) + len(lost_replies)} / duplicated {len(dup_events) + len(dup_replies)}"
    print(line)
    if lost or lost_replies or dup_events or dup_replies:
        print(f"[{name}] lost events {sorted(lost)[:10]} replies {sorted(lost_replies)[:10]}; "
              f"duplicated {list(dup_events.items())[:10]} {list(dup_replies.items())[:10]}")
    return len(lost) + len(lost_replies), len(dup_events) + len(dup_replies)


# --- replies ------------------------------------------------------------------------------------


def replies_make(*, agent, kinds: tuple[str, ...], per_kind: int, first: int = 0) -> dict[int, str]:  # type: ignore[no-untyped-def]
    """Replies on the newest tickets of each channel, each carrying a marker [rN]; marker → kind."""
    from omnidesk.tickets.models import Message, Ticket
    from omnidesk.tickets.replies import reply_create

    made: dict[int, str] = {}
    marker = first
    for kind in kinds:
        answered = (Message.objects.filter(direction="in", account__kind=kind, ticket__messages__direction="out")
                    .values_list("ticket_id", flat=True))
        ticket_ids = list(
            Message.objects.filter(direction="in", account__kind=kind).exclude(ticket_id__in=answered)
            .order_by("-pk").values_list("ticket_id", flat=True)[: per_kind * 3]
        )
        for ticket_id in list(dict.fromkeys(ticket_ids))[:per_kind]:
            reply_create(ticket=Ticket.objects.get(pk=ticket_id), user=agent, text=f"Thanks, we are on it [r{marker}]")
            made[marker] = kind
            marker += 1
    return made
