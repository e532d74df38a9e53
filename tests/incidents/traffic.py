"""Customer traffic as each channel really sends it: X Account Activity, Facebook webhooks, raw mail,
CTI call events, the generic API. Stored as raw events and applied by the real pipeline (plugin parse)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

from omnidesk.inbox.services import inbound_event_store, inbound_events_apply
from omnidesk.plugins.contract import RawEvent
from omnidesk.plugins.services import channel_account_save

X_OWN_ID = "1072250532645998596"
FB_PAGE = "1234567890321"
FB_POST = f"{FB_PAGE}_901097836652708"

#: the storm: the mobile app's login is broken; every text names the app and the failure
STORM_TEXTS = [
    "your app is down again, can't log in",
    "The app keeps crashing when I try to log in. Fix it!",
    "app login broken since 9am, this is ridiculous",
    "Is the mobile app down? Login fails every time",
    "can't log into the app, it just says error",
    "Your app won't let me log in and I need to pay a bill NOW",
    "app crashes on login. Useless.",
    "Login to the app fails with an error, what is going on?",
]
#: normal traffic, before and during the storm; "app" appears, but never with a failure word
BACKGROUND_TEXTS = [
    "Where is my parcel? It was due yesterday",
    "Please send me the invoice for my last order",
    "How do I change my delivery address?",
    "I was charged twice for order 1042, can I get a refund?",
    "I love the new app design, well done",
    "Can I pay by bank transfer instead of card?",
    "My password reset email never arrived",
    "Do you deliver to Ireland?",
    "How do I close my account?",
    "The statement for March is missing from my documents",
]


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Accounts:
    x: Any
    facebook: Any
    email: Any
    phone: Any


def accounts_make(*, x_url: str, graph_url: str, smtp_port: int, group_id: int | None = None) -> Accounts:
    x = channel_account_save(
        kind="twitter", slug="bank-x", name="Bank on X", default_group_id=group_id,
        config={"user_id": X_OWN_ID, "username": "Bank", "api_base_url": x_url, "timeout_s": 5.0, "poll_enabled": False},
        secrets={"consumer_key": "ck", "consumer_secret": "cs", "access_token": "at", "access_token_secret": "ats"},
    )
    facebook = channel_account_save(
        kind="facebook", slug="bank-facebook", name="Bank Page", default_group_id=group_id,
        config={"page_id": FB_PAGE, "graph_url": graph_url},
        secrets={"page_access_token": "EAAB-token", "app_secret": "fb-secret", "verify_token": "fb-verify"},
    )
    email = channel_account_save(
        kind="email", slug="bank-mail", name="Bank support", default_group_id=group_id,
        config={"address": "support@bank.example", "display_name": "Bank support", "enabled_fetch": False,
                "smtp_host": "127.0.0.1", "smtp_port": smtp_port, "smtp_security": "none"},
    )
    phone = channel_account_save(
        kind="phone", slug="bank-phone", name="Bank phone line", default_group_id=group_id, default_region="GB",
        config={"default_region": "GB", "timezone": "Europe/London"},
        secrets={"secret": "phone-secret", "twilio_auth_token": "tw"},
    )
    return Accounts(x, facebook, email, phone)


def tweet(n: int, text: str, at: datetime) -> bytes:
    user = str(900000000000 + n)
    return json.dumps({
        "for_user_id": X_OWN_ID,
        "tweet_create_events": [{
            "created_at": at.strftime("%a %b %d %H:%M:%S +0000 %Y"), "id_str": str(1990712204871446529 + n),
            "id": 1990712204871446529 + n, "text": f"@Bank {text}", "truncated": False,
            "in_reply_to_user_id_str": X_OWN_ID, "in_reply_to_screen_name": "Bank",
            "user": {"id": int(user), "id_str": user, "name": f"Customer {n}", "screen_name": f"customer{n}",
                     "verified": False, "followers_count": 100 + n},
            "entities": {"hashtags": [], "urls": [], "symbols": [],
                         "user_mentions": [{"screen_name": "Bank", "id_str": X_OWN_ID, "indices": [0, 5]}]},
            "timestamp_ms": str(int(at.timestamp() * 1000)), "lang": "en",
        }],
    }).encode()


def fb_comment(n: int, text: str, at: datetime) -> bytes:
    value = {"item": "comment", "verb": "add", "comment_id": f"901097836652708_{700000 + n}", "post_id": FB_POST,
             "parent_id": FB_POST, "from": {"id": str(5550000000000 + n), "name": f"Fan {n}"},
             "created_time": int(at.timestamp()), "message": text}
    return json.dumps({"object": "page", "entry": [
        {"id": FB_PAGE, "time": int(at.timestamp()), "changes": [{"field": "feed", "value": value}]}]}).encode()


def fb_messenger(n: int, text: str, at: datetime) -> bytes:
    ms = int(at.timestamp() * 1000)
    event = {"sender": {"id": str(8880000000 + n)}, "recipient": {"id": FB_PAGE}, "timestamp": ms,
             "message": {"mid": f"m_in-{n}", "text": text}}
    return json.dumps({"object": "page", "entry": [{"id": FB_PAGE, "time": ms, "messaging": [event]}]}).encode()


def mail(n: int, text: str, at: datetime) -> bytes:
    return "\r\n".join([
        f"From: Customer {n} <customer{n}@example.com>", "To: support@bank.example",
        f"Subject: {text[:40]}", f"Date: {format_datetime(at)}", f"Message-ID: <c{n}.{int(at.timestamp())}@example.com>",
        "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", text, "",
    ]).encode()


def call(n: int, text: str, at: datetime) -> bytes:
    answered = n % 3 != 0
    return json.dumps({
        "event": "hangup", "call_id": f"pbx-{n}", "from": f"+44 7700 9{n:05d}", "to": "0161 496 0000", "direction": "in",
        "at": (at + timedelta(seconds=90)).isoformat(), "started_at": at.isoformat(), "duration_s": 90 if answered else 0,
        "answered": answered, **({"agent": "201"} if answered else {}),
        "notes": ("Caller reports: " if answered else "Voicemail: ") + text,
    }).encode()


BUILDERS = {"x": tweet, "facebook": fb_comment, "messenger": fb_messenger, "email": mail, "phone": call}


def account_for(accounts: Accounts, channel: str) -> Any:
    return {"x": accounts.x, "facebook": accounts.facebook, "messenger": accounts.facebook, "email": accounts.email,
            "phone": accounts.phone}[channel]


def deliver(accounts: Accounts, items: list[tuple[str, int, str, datetime]]) -> None:
    """Store each (channel, n, text, sent_at) as its channel's raw event, then apply them all."""
    for channel, n, text, at in items:
        body = BUILDERS[channel](n, text, at)
        headers = {"Content-Type": "application/json"} if channel != "email" else {}
        inbound_event_store(account=account_for(accounts, channel), raw=RawEvent(body=body, headers=headers))
    while True:
        report = inbound_events_apply(limit=200)
        assert report.failed == 0, report
        if not (report.applied or report.ignored):
            break


def spread(rng: random.Random, texts: list[str], channels: list[str], count: int, start: datetime, span_s: float,
           first_n: int) -> list[tuple[str, int, str, datetime]]:
    """`count` messages over `span_s` seconds from `start`, channels in turn, numbered from first_n."""
    return [
        (channels[i % len(channels)], first_n + i, rng.choice(texts), start + timedelta(seconds=rng.uniform(0, span_s)))
        for i in range(count)
    ]
