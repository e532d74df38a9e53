"""fetch() against a real Dovecot: IDLE, polling, cursors, acknowledgement, UIDVALIDITY, reconnects."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from channels_plugins.email.adapter import EmailChannel, EmailConfig
from channels_plugins.email.client import MailboxUnavailable
from omnidesk.plugins.config import load_config
from omnidesk.plugins.contract import AuthorizationRequired, FetchResult
from omnidesk.plugins.testing import network_blocked

from tests.services.procs import free_port

from .conftest import SECRETS, email_config
from .dovecot import Dovecot


def mail(n: int, *, subject: str = "Help", extra: str = "") -> bytes:
    return (
        f"From: Customer {n} <customer{n}@example.com>\r\nTo: support@desk.example\r\nSubject: {subject} {n}\r\n"
        f"Date: Tue, 14 Oct 2025 09:00:00 +0000\r\nMessage-ID: <m{n}.{time.time_ns()}@example.com>\r\n{extra}"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease help with case {n}.\r\n"
    ).encode()


def plugin(dovecot: Dovecot | None, user: str, secrets: dict[str, str] | None = None, **overrides: Any) -> EmailChannel:
    config = load_config(EmailConfig, email_config(dovecot, user, **overrides), SECRETS if secrets is None else secrets)
    return EmailChannel(config, account_slug="support")  # type: ignore[arg-type]


def flags_of(dovecot: Dovecot, user: str, folder: str = "INBOX") -> list[set[bytes]]:
    with dovecot.client(user) as client:
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        data = client.fetch(uids, ["FLAGS"]) if uids else {}
        return [set(data[u][b"FLAGS"]) for u in sorted(data)]


def test_idle_wakes_within_seconds_of_an_append(dovecot: Dovecot, mailbox: str) -> None:
    p = plugin(dovecot, mailbox, idle_timeout_s=30.0)
    # The mailbox is empty, so fetch() connects and waits in IDLE; the mail arrives 0.5 s later.
    timer = threading.Timer(0.5, lambda: dovecot.append(mailbox, mail(1)))
    started = time.monotonic()
    timer.start()
    try:
        result = p.fetch(None)
    finally:
        timer.join()
        p.close()
    elapsed = time.monotonic() - started
    assert len(result.items) == 1, result
    assert elapsed < 5, f"IDLE took {elapsed:.1f}s to notice the new mail"
    assert result.retry_after == 0
    assert result.items[0].source_key.startswith("imap:INBOX:")


@pytest.fixture
def quick(dovecot: Dovecot, mailbox: str):  # type: ignore[no-untyped-def]
    """A plugin factory whose IDLE gives up after a second (so empty fetches are fast)."""
    made: list[EmailChannel] = []

    def make(**overrides: Any) -> EmailChannel:
        overrides.setdefault("idle_timeout_s", 1.0)
        p = plugin(dovecot, mailbox, **overrides)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def test_polling_fallback_without_idle(dovecot: Dovecot, mailbox: str, quick) -> None:  # type: ignore[no-untyped-def]
    p = quick(idle=False, poll_interval_s=42.0)
    empty = p.fetch(None)
    assert empty.items == () and empty.retry_after == 42.0
    dovecot.append(mailbox, mail(1))
    dovecot.append(mailbox, mail(2))
    got = p.fetch(empty.cursor)
    assert [i.source_key.rsplit(":", 1)[1] for i in got.items] == ["1", "2"]
    assert got.retry_after == 0  # more may be waiting: ask again at once


def test_poll_cost_grows_with_new_mail_only(dovecot: Dovecot, mailbox: str, quick) -> None:  # type: ignore[no-untyped-def]
    for n in range(5):
        dovecot.append(mailbox, mail(n))
    p = quick(fetch_batch=2)
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        result = p.fetch(cursor)
        seen += [i.source_key for i in result.items]
        cursor = result.cursor
    assert len(seen) == 5 and len(set(seen)) == 5
    state = json.loads(cursor)["folders"]["INBOX"]
    assert state["last_uid"] == 5
    # Nothing new: the next search asks for UIDs above 5 only, and `*` (=5) is dropped.
    assert p.fetch(cursor).items == ()


@pytest.mark.parametrize(
    ("ack", "expected"),
    [("seen", {b"\\Seen", b"$OmnideskImported"}), ("keyword", {b"$OmnideskImported"}), ("leave", set())],
)
def test_acknowledged_only_after_the_cursor_comes_back(dovecot: Dovecot, mailbox: str, quick, ack, expected) -> None:  # type: ignore[no-untyped-def]
    dovecot.append(mailbox, mail(1))
    p = quick(ack=ack)
    handed = p.fetch(None)
    assert len(handed.items) == 1
    # Handed over but not yet committed by the core: the server is untouched (BODY.PEEK: not even \Seen).
    assert flags_of(dovecot, mailbox)[0] - {b"\\Recent"} == set()
    p.fetch(handed.cursor)  # the core passes the cursor back only after committing
    assert flags_of(dovecot, mailbox)[0] - {b"\\Recent"} == expected


def test_move_acknowledgement(dovecot: Dovecot, mailbox: str, quick) -> None:  # type: ignore[no-untyped-def]
    dovecot.append(mailbox, mail(1))
    dovecot.append(mailbox, mail(2))
    p = quick(ack="move", ack_folder="Imported")
    handed = p.fetch(None)
    assert len(handed.items) == 2
    assert len(flags_of(dovecot, mailbox)) == 2
    again = p.fetch(handed.cursor)
    assert again.items == ()
    assert flags_of(dovecot, mailbox) == []
    assert len(flags_of(dovecot, mailbox, "Imported")) == 2


def test_killed_between_commit_and_ack_loses_and_doubles_nothing(dovecot: Dovecot, mailbox: str, quick) -> None:  # type: ignore[no-untyped-def]
    dovecot.append(mailbox, mail(1))
    dovecot.append(mailbox, mail(2))
    first = quick(ack="seen").fetch(None)
    # The process dies before the cursor is saved: a new instance starts from the old (no) cursor.
    again = quick(ack="seen").fetch(None)
    assert [i.source_key for i in again.items] == [i.source_key for i in first.items]  # same keys: the core dedupes
    assert all(f - {b"\\Recent"} == set() for f in flags_of(dovecot, mailbox))
    # Saved this time; the next fetch acknowledges both, once.
    third = quick(ack="seen").fetch(again.cursor)
    assert third.items == ()
    assert all(b"\\Seen" in f for f in flags_of(dovecot, mailbox))


def test_uidvalidity_change_rescans_without_duplicates(dovecot: Dovecot, mailbox: str, quick) -> None:  # type: ignore[no-untyped-def]
    raws = [mail(1), mail(2)]
    for raw in raws:
        dovecot.append(mailbox, raw, folder="Support")
    p = quick(folders=["Support"], ack="keyword")
    handed = p.fetch(None)
    assert len(handed.items) == 2
    acked = p.fetch(handed.cursor)
    old_validity = json.loads(acked.cursor)["folders"]["Support"]["uidvalidity"]
    p.close()
    # A server migration renumbers the folder: same mails (with their flags), new UIDVALIDITY, plus one new mail.
    with dovecot.client(mailbox) as client:
        client.select_folder("Support")
        kept = client.fetch(client.search(["ALL"]), ["BODY.PEEK[]", "FLAGS"])
        client.unselect_folder()
        client.delete_folder("Support")
        client.create_folder("Support")
        for data in kept.values():
            client.append("Support", data[b"BODY[]"], flags=[f for f in data[b"FLAGS"] if f != b"\\Recent"])
        client.append("Support", mail(3))
    rescan = p.fetch(acked.cursor)
    state = json.loads(rescan.cursor)["folders"]["Support"]
    assert state["uidvalidity"] != old_validity
    # The two imported mails carry our keyword: skipped. The new one comes with a content key.
    assert len(rescan.items) == 1
    assert rescan.items[0].source_key.startswith("mid:m3.")


def test_uidvalidity_rescan_keys_are_content_keys(dovecot: Dovecot, mailbox: str, quick) -> None:  # type: ignore[no-untyped-def]
    raw = mail(1)
    dovecot.append(mailbox, raw, folder="Leave")
    p = quick(folders=["Leave"], ack="leave")
    acked = p.fetch(p.fetch(None).cursor)
    p.close()
    with dovecot.client(mailbox) as client:
        client.delete_folder("Leave")
        client.create_folder("Leave")
        client.append("Leave", raw)
    first = p.fetch(acked.cursor)
    second = quick(folders=["Leave"], ack="leave").fetch(acked.cursor)
    assert len(first.items) == 1
    # The same bytes seen again give the same key: one InboundEvent however often the rescan runs.
    assert first.items[0].source_key == second.items[0].source_key
    assert first.items[0].source_key.split(":")[0] == "mid"


def test_reconnects_after_the_server_drops_the_connection(dovecot: Dovecot, mailbox: str, quick) -> None:  # type: ignore[no-untyped-def]
    p = quick(idle=False)
    cursor = p.fetch(None).cursor
    dovecot.kick(mailbox)
    dovecot.append(mailbox, mail(1))
    result = p.fetch(cursor)
    assert len(result.items) == 1


def test_dropped_during_idle_reconnects_on_the_next_fetch(dovecot: Dovecot, mailbox: str, quick) -> None:  # type: ignore[no-untyped-def]
    p = quick(idle_timeout_s=2.0)
    timer = threading.Timer(0.5, lambda: dovecot.kick(mailbox))
    timer.start()
    try:
        try:
            first: FetchResult | None = p.fetch(None)
        except MailboxUnavailable:
            first = None  # the drop was reported; the poller backs off and calls again
    finally:
        timer.join()
    dovecot.append(mailbox, mail(1))
    result = p.fetch(first.cursor if first else None)
    assert len(result.items) == 1


def test_rejected_credentials_need_reauthorization(dovecot: Dovecot, mailbox: str) -> None:
    p = plugin(dovecot, mailbox, secrets={"password": "wrong"})
    with pytest.raises(AuthorizationRequired, match="refused the credentials"):
        p.fetch(None)


def test_unreachable_server_is_a_clear_error() -> None:
    p = plugin(None, "x", imap_host="127.0.0.1", imap_port=free_port(), imap_security="none", timeout_s=2.0)
    with pytest.raises(MailboxUnavailable, match="cannot connect"):
        p.fetch(None)


def test_fetch_disabled_never_connects() -> None:
    demo = EmailChannel.demo_account()
    p = EmailChannel(load_config(EmailConfig, dict(demo.config), dict(demo.secrets)), account_slug="demo-email")  # type: ignore[arg-type]
    with network_blocked() as attempts:
        result = p.fetch("previous")
    assert attempts == [] and result.items == () and result.cursor == "previous" and result.retry_after
    events = p.demo_events()
    assert 2 <= len(events) <= 3
    assert all(p.parse(e)[0].event_type == "message" for e in events)  # type: ignore[arg-type]
