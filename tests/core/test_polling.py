"""Pull channels: items are committed before the cursor moves; errors back off and show on the account."""

import json
from dataclasses import dataclass

import pytest

from omnidesk.inbox.models import Cursor, InboundEvent
from omnidesk.inbox.polling import account_poll, pull_accounts
from omnidesk.inbox.services import inbound_events_apply
from omnidesk.plugins.config import ConfigSchema, setting
from omnidesk.plugins.contract import (
    Author,
    AuthorizationRequired,
    Capabilities,
    ChannelPlugin,
    Feature,
    FetchResult,
    IdentityKind,
    IdentityRef,
    InboundMessage,
    RawEvent,
)
from omnidesk.plugins.registry import registry
from omnidesk.plugins.services import channel_account_save
from omnidesk.tickets.models import Message

pytestmark = pytest.mark.django_db

#: what the fake remote mailbox holds; tests edit it
REMOTE: dict = {"items": [], "error": None, "calls": []}


@dataclass(frozen=True)
class FakeConfig(ConfigSchema):
    poll_interval_s: float = setting(30.0)


class FakePull(ChannelPlugin[FakeConfig]):
    kind = "fakepull"
    label = "Fake pull"
    capabilities = Capabilities(features=frozenset({Feature.PULL}))
    config_schema = FakeConfig
    event_types = {"note": "a note"}

    def fetch(self, cursor):
        REMOTE["calls"].append(cursor)
        if REMOTE["error"]:
            raise REMOTE["error"]
        last = int(cursor or 0)
        new = [i for i in REMOTE["items"] if i > last]
        items = tuple(RawEvent(body=json.dumps({"n": i}).encode(), source_key=f"uid:{i}") for i in new)
        return FetchResult(items=items, cursor=str(max(new, default=last)))

    def parse(self, raw):
        n = json.loads(raw.body)["n"]
        who = Author(IdentityRef(IdentityKind.EMAIL, "pat@example.com"))
        return [InboundMessage(external_id=f"n{n}", event_type="note", thread_key="box", author=who, text=f"note {n}")]


@pytest.fixture
def account():
    REMOTE.update(items=[], error=None, calls=[])
    registry().plugins["fakepull"] = FakePull
    try:
        yield channel_account_save(kind="fakepull", slug="box", name="Box", config={})
    finally:
        registry().plugins.pop("fakepull", None)


def test_items_are_stored_then_the_cursor_advances(account):
    REMOTE["items"] = [1, 2, 3]
    report = account_poll(account=account)
    assert (report.stored, report.next_poll_in_s) == (3, 30.0)
    assert Cursor.objects.get(account=account).value == "3"
    assert InboundEvent.objects.filter(status="pending").count() == 3
    REMOTE["items"] = [1, 2, 3, 4]
    assert account_poll(account=account).stored == 1
    assert REMOTE["calls"] == [None, "3"]
    inbound_events_apply()
    assert Message.objects.count() == 4


def test_a_refetch_after_a_crash_before_the_cursor_moved_makes_no_duplicate(account):
    REMOTE["items"] = [1, 2]
    account_poll(account=account)
    Cursor.objects.filter(account=account).update(value="")  # as if we died before saving the cursor
    report = account_poll(account=account)
    assert (report.stored, report.duplicates) == (0, 2)
    assert InboundEvent.objects.count() == 2


def test_a_fetch_error_backs_off_and_keeps_the_cursor(account):
    REMOTE["items"] = [1]
    account_poll(account=account)
    REMOTE["error"] = ConnectionResetError("connection reset by peer")
    first = account_poll(account=account, failures=0)
    second = account_poll(account=account, failures=3)
    assert first.next_poll_in_s < second.next_poll_in_s <= 900
    account.refresh_from_db()
    assert "connection reset" in account.last_error
    assert Cursor.objects.get(account=account).value == "1"


def test_revoked_credentials_stop_polling_until_reauthorized(account):
    REMOTE["error"] = AuthorizationRequired("token expired")
    account_poll(account=account)
    account.refresh_from_db()
    assert account.needs_reauthorization
    assert account not in pull_accounts()
