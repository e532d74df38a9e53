"""The conformance kit itself: it passes a good plugin and names what is wrong with a bad one."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import urllib.request
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from omnidesk.plugins.config import ConfigSchema, Secret, setting
from omnidesk.plugins.contract import (
    Attachment,
    Author,
    Capabilities,
    ChannelPlugin,
    Delivery,
    Feature,
    IdentityKind,
    IdentityRef,
    InboundMessage,
    MalformedPayload,
    OutboundReply,
    ParsedItem,
    RawEvent,
    SignatureInvalid,
    UnsupportedEvent,
    WebhookRequest,
)
from omnidesk.plugins.fixtures import FixtureFile, discover, orphans, sample_config, serialize_items, to_jsonable
from omnidesk.plugins.registry import registry
from omnidesk.plugins.testing import NetworkAttempt, PluginConformance, network_blocked, registered

ROOT = Path(__file__).resolve().parents[2]
KEY = "kit-secret"
BODY = b'{"id": "m-1", "from": "u-1", "text": "hello"}\n'


@dataclass(frozen=True)
class KitConfig(ConfigSchema):
    secret: Secret = setting(help="signs webhooks")
    mode: str = setting("plain", help="an ordinary setting")


class GoodChannel(ChannelPlugin[KitConfig]):
    """A small, correct plugin; the broken ones below each get one thing wrong."""

    kind = "kitgood"
    label = "Kit"
    capabilities = Capabilities(features=frozenset({Feature.PUSH, Feature.PRIVATE_REPLY}), max_length=10)
    config_schema = KitConfig
    event_types = {"message": "a message → a ticket"}

    def verify(self, request: WebhookRequest) -> None:
        given = request.headers.get("X-Kit-Signature", "")
        expected = hmac.new(self.config.secret.reveal().encode(), request.body, hashlib.sha256).hexdigest()
        if not given or not hmac.compare_digest(given, expected):
            raise SignatureInvalid("bad signature")

    def load(self, raw: RawEvent) -> dict[str, Any]:
        try:
            data = json.loads(raw.body)
        except (ValueError, RecursionError):
            raise MalformedPayload("not JSON") from None
        if not isinstance(data, dict):
            raise MalformedPayload("not an object")
        if data.get("type", "message") != "message":
            raise UnsupportedEvent(f"type {data.get('type')!r}")
        if not all(isinstance(data.get(k), str) and data.get(k) for k in ("id", "from", "text")):
            raise MalformedPayload("id, from and text are required strings")
        return data

    def message(self, data: dict[str, Any], **changes: Any) -> InboundMessage:
        item = InboundMessage(
            external_id=data["id"],
            event_type="message",
            thread_key=data["id"],
            author=Author(IdentityRef(IdentityKind.EXTERNAL, data["from"], self.account_slug)),
            text=data["text"],
            sent_at=datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc),
        )
        return replace(item, **changes)

    def parse(self, raw: RawEvent) -> list[ParsedItem]:
        return [self.message(self.load(raw))]

    def send(self, reply: OutboundReply) -> Delivery:
        self.check_reply(reply)
        return Delivery(external_id=reply.idempotency_key)


def kit_sign(kit: PluginConformance, request: WebhookRequest) -> WebhookRequest:
    return kit.with_headers(
        request, {"X-Kit-Signature": hmac.new(KEY.encode(), request.body, hashlib.sha256).hexdigest()}
    )


def make_kit(plugin: type[ChannelPlugin[Any]], folder: Path, **attrs: Any) -> PluginConformance:
    values = {
        "plugin_class": plugin,
        "fixtures_dir": folder,
        "secrets": {"secret": KEY},
        "unknown_payload": b'{"type": "like", "id": "l-1"}',
        "sign": kit_sign,
        "account_slug": "kit-acct",
    }
    return type("KitUnderTest", (PluginConformance,), {**values, **attrs})()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "message__hello.json").write_bytes(BODY)
    (tmp_path / "malformed__not_json.json").write_bytes(b'{"id": ')
    return tmp_path


def write_goldens(kit: PluginConformance, request: pytest.FixtureRequest) -> None:
    for f in discover(Path(kit.fixtures_dir)):
        f.golden_path.write_text(json.dumps(kit.outcome(request, f), indent=2) + "\n")


def failure(call: Any, *args: Any) -> str:
    """The message the kit fails with; fails itself when the kit does not notice."""
    try:
        call(*args)
    except (AssertionError, pytest.fail.Exception) as exc:
        return str(exc)
    raise AssertionError(f"the kit did not notice ({getattr(call, '__name__', call)})")


def every_check(kit: PluginConformance, request: pytest.FixtureRequest) -> None:
    kit.test_declarations()
    kit.test_fixture_folder()
    kit.test_unknown_payload_is_unsupported(request)
    kit.test_garbage_raises_only_plugin_errors(request)
    kit.test_reply_one_unit_too_long()
    kit.test_visibility_the_channel_does_not_allow()
    for f in discover(Path(kit.fixtures_dir)):
        kit.test_golden(f, request)
        kit.test_parse_is_deterministic_and_pure(f, request)
        kit.test_signatures(f, request)
        if not f.expects_error:
            kit.test_external_ids(f, request)


# --- the base class and the good plugin ---------------------------------------------------


def test_only_subclasses_that_name_a_plugin_are_collected():
    assert PluginConformance.__test__ is False
    assert type("A", (PluginConformance,), {})().__test__ is False  # an intermediate base
    assert type("B", (PluginConformance,), {"plugin_class": GoodChannel}).__test__ is True
    assert type("C", (PluginConformance,), {"plugin_class": GoodChannel, "__test__": False}).__test__ is False


def test_a_good_plugin_passes_every_check(folder, request):
    kit = make_kit(GoodChannel, folder)
    write_goldens(kit, request)
    every_check(kit, request)
    with pytest.raises(pytest.skip.Exception, match="cannot send|can send"):
        kit.test_send_refused_when_the_channel_cannot_send()


@pytest.mark.django_db
def test_the_ticket_test_works_for_a_plugin_that_is_not_installed(folder, request):
    assert "kitgood" not in registry().plugins
    make_kit(GoodChannel, folder).test_fixture_becomes_a_ticket_once(request)
    assert "kitgood" not in registry().plugins  # registered only for the test


# --- broken plugins: the kit says what is wrong ---------------------------------------------


class NetworkParse(GoodChannel):
    def parse(self, raw: RawEvent) -> list[ParsedItem]:
        socket.create_connection(("203.0.113.9", 443), timeout=1)
        return super().parse(raw)


class HiddenNetworkParse(GoodChannel):
    def parse(self, raw: RawEvent) -> list[ParsedItem]:
        try:
            urllib.request.urlopen("http://203.0.113.9/lookup", timeout=1)  # noqa: S310
        except Exception:  # noqa: BLE001 - the bug under test: a swallowed network failure
            pass
        return super().parse(raw)


class DatabaseParse(GoodChannel):
    def parse(self, raw: RawEvent) -> list[ParsedItem]:
        from omnidesk.tickets.models import Ticket

        Ticket.objects.exists()
        return super().parse(raw)


class RandomIds(GoodChannel):
    def parse(self, raw: RawEvent) -> list[ParsedItem]:
        return [self.message(self.load(raw), external_id=str(uuid.uuid4()))]


class SourceKeyIds(GoodChannel):
    def parse(self, raw: RawEvent) -> list[ParsedItem]:
        return [self.message(self.load(raw), external_id=raw.dedupe_key)]


class CrashesOnGarbage(GoodChannel):
    def parse(self, raw: RawEvent) -> list[ParsedItem]:
        data = json.loads(raw.body) if raw.body.startswith(b"{") else {}
        return [self.message({"id": data["id"], "from": data["from"], "text": data["text"]})]


class AcceptsAnySignature(GoodChannel):
    def verify(self, request: WebhookRequest) -> None:
        return None


class IgnoresLimits(GoodChannel):
    def check_reply(self, reply: OutboundReply) -> None:
        pass


class SendsFirst(GoodChannel):
    def send(self, reply: OutboundReply) -> Delivery:
        urllib.request.urlopen("http://203.0.113.9/send", timeout=1)  # noqa: S310
        return super().send(reply)


class UnsafeHtml(GoodChannel):
    def parse(self, raw: RawEvent) -> list[ParsedItem]:
        return [self.message(self.load(raw), html='<img src=x onerror="alert(1)">')]


class NaiveTime(GoodChannel):
    def parse(self, raw: RawEvent) -> list[ParsedItem]:
        return [self.message(self.load(raw), sent_at=datetime(2026, 1, 5, 9, 30))]


class UndeclaredType(GoodChannel):
    def parse(self, raw: RawEvent) -> list[ParsedItem]:
        return [self.message(self.load(raw), event_type="comment")]


class TwiceTheSameId(GoodChannel):
    def parse(self, raw: RawEvent) -> list[ParsedItem]:
        return [self.message(self.load(raw))] * 2


@pytest.mark.parametrize(
    ("plugin", "check", "says"),
    [
        (NetworkParse, "test_parse_is_deterministic_and_pure", "kitgood.parse() went to the network (getaddrinfo"),
        (HiddenNetworkParse, "test_golden", "went to the network (getaddrinfo '203.0.113.9') and hid the error"),
        (DatabaseParse, "test_parse_is_deterministic_and_pure", "kitgood.parse() used the database; it must be pure"),
        (RandomIds, "test_parse_is_deterministic_and_pure", "two parses of the same bytes differ"),
        (SourceKeyIds, "test_parse_is_deterministic_and_pure", "a redelivery (another source_key) parses differently"),
        (SourceKeyIds, "test_external_ids", "external ids change between parses"),
        (TwiceTheSameId, "test_external_ids", "external ids repeated within one payload: ['m-1']"),
        (UnsafeHtml, "test_golden", "html is not sanitized"),
        (NaiveTime, "test_golden", "InboundMessage.sent_at is a naive datetime"),
        (UndeclaredType, "test_golden", "event_type 'comment' is not in the declared event_types"),
        (AcceptsAnySignature, "test_signatures", "verify() accepted a tampered body"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_a_broken_parse_or_verify_is_named(folder, request, plugin, check, says):
    kit = make_kit(plugin, folder)
    assert says in failure(getattr(kit, check), FixtureFile(folder / "message__hello.json"), request)


def test_a_parse_that_crashes_on_garbage_is_caught(folder, request):
    message = failure(make_kit(CrashesOnGarbage, folder).test_garbage_raises_only_plugin_errors, request)
    assert "parse() raised KeyError" in message and "must raise a PluginError subclass" in message


@pytest.mark.django_db
def test_parse_may_not_use_the_database_even_in_a_database_test(folder, request):
    message = failure(make_kit(DatabaseParse, folder).test_golden, FixtureFile(folder / "message__hello.json"), request)
    assert "used the database" in message


def test_a_send_that_ignores_max_length_is_caught(folder):
    message = failure(make_kit(IgnoresLimits, folder).test_reply_one_unit_too_long)
    assert message == "check_reply() accepted a reply of 11 characters; it must raise ReplyTooLong"


class WeightedChannel(GoodChannel):
    """Counts like X: every letter weighs two, so the limit of 10 is five letters."""

    @classmethod
    def measure(cls, text: str) -> int:
        return 2 * len(text)


def test_one_unit_over_is_found_with_the_channels_own_measure(folder):
    make_kit(WeightedChannel, folder).test_reply_one_unit_too_long()  # passes: 6 letters refused, 5 allowed
    message = failure(
        make_kit(type("Weighted", (WeightedChannel, IgnoresLimits), {}), folder).test_reply_one_unit_too_long
    )
    assert "accepted a reply of 6 characters" in message


def test_a_send_that_goes_to_the_network_before_refusing_is_caught(folder):
    message = failure(make_kit(SendsFirst, folder).test_visibility_the_channel_does_not_allow)
    assert message == "send() went to the network before refusing a public reply"


# --- fixtures and goldens -------------------------------------------------------------------


def test_the_folder_check_names_what_is_missing_or_stray(folder):
    (folder / "reaction__thumbs_up.json").write_text("{}")
    (folder / "README").write_text("not named like a fixture")
    (folder / "gone__away.expected.json").write_text("[]")
    kit = make_kit(type("TwoTypes", (GoodChannel,), {"event_types": {"message": "m", "delivery": "d"}}), folder)
    message = failure(kit.test_fixture_folder)
    assert "not named <event_type>__<scenario>.<ext>: README" in message
    assert "fixture prefixes that are not declared event types: reaction" in message
    assert "declared event types without a fixture: delivery" in message
    assert "sidecars without a fixture: gone__away.expected.json" in message


def test_a_missing_golden_says_how_to_make_it(folder, request):
    message = failure(make_kit(GoodChannel, folder).test_golden, FixtureFile(folder / "message__hello.json"), request)
    assert "message__hello.json has no golden message__hello.expected.json" in message
    assert "--update-goldens" in message


def test_a_changed_output_shows_the_diff(folder, request):
    kit = make_kit(GoodChannel, folder)
    write_goldens(kit, request)
    golden = folder / "message__hello.expected.json"
    golden.write_text(golden.read_text().replace('"hello"', '"hullo"'))
    message = failure(kit.test_golden, FixtureFile(folder / "message__hello.json"), request)
    assert "parse() no longer matches its golden" in message
    assert '-    "text": "hullo",' in message and '+    "text": "hello",' in message


def test_fixtures_must_fail_or_succeed_as_their_names_say(folder, request):
    kit = make_kit(GoodChannel, folder)
    (folder / "malformed__fine.json").write_bytes(BODY)
    (folder / "message__broken.json").write_bytes(b"[]")
    (folder / "unsupported__bad_json.json").write_bytes(b"{")
    assert "a malformed__ fixture must make parse() raise" in failure(
        kit.outcome, request, FixtureFile(folder / "malformed__fine.json")
    )
    assert (
        "parse() raised MalformedPayload: not an object. Only malformed__* and unsupported__* fixtures may fail"
        in failure(kit.outcome, request, FixtureFile(folder / "message__broken.json"))
    )
    assert "parse() must raise UnsupportedEvent, raised MalformedPayload" in failure(
        kit.outcome, request, FixtureFile(folder / "unsupported__bad_json.json")
    )


def test_update_goldens_rewrites_and_reports(tmp_path):
    """Through pytest itself: fails without a golden, writes it with the flag, then passes."""
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    (fixtures / "message__hello.json").write_bytes(BODY)
    (tmp_path / "test_kit_plugin.py").write_text(
        "from pathlib import Path\n"
        "from omnidesk.plugins.testing import PluginConformance\n"
        "from tests.plugins.test_kit import GoodChannel, KEY, kit_sign\n\n"
        "class TestKitPlugin(PluginConformance):\n"
        "    plugin_class = GoodChannel\n"
        "    fixtures_dir = Path(__file__).parent / 'fixtures'\n"
        "    secrets = {'secret': KEY}\n"
        '    unknown_payload = b\'{"type": "like"}\'\n'
        "    sign = kit_sign\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "OMNIDESK_TEST_SQLITE": str(tmp_path / "t.sqlite3"),
    }

    def pytest_run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "golden", str(tmp_path), *extra],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    first = pytest_run()
    assert first.returncode == 1 and "has no golden message__hello.expected.json" in first.stdout, first.stdout
    second = pytest_run("--update-goldens")
    assert second.returncode == 0, second.stdout
    assert "rewrote 1 golden(s); review the diff before committing" in second.stdout
    assert json.loads((fixtures / "message__hello.expected.json").read_text())[0]["text"] == "hello"
    third = pytest_run()
    assert third.returncode == 0 and "rewrote" not in third.stdout, third.stdout


# --- the helpers ------------------------------------------------------------------------------


def test_registered_adds_and_restores_and_refuses_an_invalid_class():
    before = dict(registry().plugins)
    with registered(GoodChannel):
        assert registry().plugins["kitgood"] is GoodChannel
    assert registry().plugins == before
    no_caps = type("NoCaps", (GoodChannel,), {"capabilities": None})
    with pytest.raises(ValueError, match="NoCaps cannot be registered: it has no Capabilities"), registered(no_caps):
        pass
    assert registry().plugins == before


def test_register_channel_plugin_fixture(register_channel_plugin):
    register_channel_plugin(GoodChannel)
    assert registry().plugins["kitgood"] is GoodChannel


def test_network_blocked_refuses_and_restores():
    with network_blocked() as attempts, pytest.raises(NetworkAttempt), socket.socket() as s:
        s.connect(("127.0.0.1", 9))
    assert attempts == ["connect ('127.0.0.1', 9)"]
    assert socket.socket.connect.__name__ == "connect" and socket.getaddrinfo.__name__ == "getaddrinfo"


def test_block_network_fixture(block_network):
    with pytest.raises(NetworkAttempt):
        socket.getaddrinfo("example.com", 80)
    assert block_network == ["getaddrinfo 'example.com'"]


def test_serialization_of_contract_values():
    item = InboundMessage(
        external_id="e",
        event_type="message",
        thread_key="t",
        author=Author(IdentityRef(IdentityKind.EMAIL, "a@example.com")),
        text="x",
        sent_at=datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc),
        attachments=(Attachment("a.txt", "text/plain", b"abc"),),
        metadata=(("k", "v"),),
    )
    (out,) = serialize_items([item])
    assert out["type"] == "InboundMessage" and list(out)[1] == "external_id"
    assert out["author"]["identity"] == {"kind": "email", "value": "a@example.com", "namespace": ""}
    assert out["sent_at"] == "2026-01-05T09:30:00+00:00"
    assert out["attachments"][0]["content"] == {"sha256": hashlib.sha256(b"abc").hexdigest(), "size": 3}
    assert out["metadata"] == [["k", "v"]] and out["call"] is None
    assert to_jsonable(Secret("hunter2")) == "Secret('********')"
    with pytest.raises(TypeError, match="object is not part of the plugin contract"):
        serialize_items([object()])


def test_sample_config_fills_placeholders_and_takes_overrides():
    assert sample_config(KitConfig) == ({}, {"secret": "test-secret"})
    assert sample_config(KitConfig, {"secret": "s", "mode": "x"}) == ({"mode": "x"}, {"secret": "s"})
    assert sample_config(KitConfig, {"secret": {"env": "KIT_SECRET"}}) == ({"secret": {"env": "KIT_SECRET"}}, {})


def test_fixture_files_are_found_and_named(tmp_path):
    for name in [
        "message__a.json",
        "message__a.headers.json",
        "message__a.expected.json",
        ".hidden",
        "_notes.txt",
        "delivery__b.eml",
        "stray.expected.json",
        "doc.md",
    ]:
        (tmp_path / name).write_text("{}")
    found = discover(tmp_path)
    assert [f.path.name for f in found] == ["delivery__b.eml", "message__a.json"]
    eml = found[0]
    assert (eml.name, eml.prefix, eml.scenario, eml.expects_error) == ("delivery__b", "delivery", "b", False)
    assert eml.golden_path.name == "delivery__b.expected.json" and found[1].headers() == {}
    assert [p.name for p in orphans(tmp_path)] == ["stray.expected.json"]
    assert FixtureFile(tmp_path / "malformed__x.bin").expects_error


class WindowChannel(GoodChannel):
    """Messenger-like: private replies for 24 hours, 7 days with a tag."""

    capabilities = Capabilities(
        features=frozenset({Feature.PUSH, Feature.PRIVATE_REPLY}),
        reply_window=timedelta(hours=24),
        extended_reply_window=timedelta(days=7),
    )


class NoWindow(WindowChannel):
    def check_window(self, reply: OutboundReply, now: datetime | None = None) -> bool:
        return False


class LogOnly(GoodChannel):
    """Phone-like: receives, never sends."""

    capabilities = Capabilities(features=frozenset({Feature.PUSH}))


class LogOnlyThatSends(LogOnly):
    def check_reply(self, reply: OutboundReply) -> None:
        pass


def test_reply_windows_are_checked(folder):
    make_kit(WindowChannel, folder).test_reply_window()
    message = failure(make_kit(NoWindow, folder).test_reply_window)
    assert message.startswith("check_reply() accepted a private reply after the reply window closed")


def test_a_channel_that_cannot_send_must_refuse(folder):
    make_kit(LogOnly, folder).test_send_refused_when_the_channel_cannot_send()
    message = failure(make_kit(LogOnlyThatSends, folder).test_send_refused_when_the_channel_cannot_send)
    assert message.startswith("check_reply() accepted a reply on a channel that cannot send")


class LooksUp(GoodChannel):
    capabilities = Capabilities(features=frozenset({Feature.PUSH, Feature.PRIVATE_REPLY, Feature.DELIVERY_LOOKUP}))

    def delivery_find(self, reply: OutboundReply, *, since: datetime) -> Delivery | None:
        return None


class DeclaresLookupOnly(GoodChannel):
    capabilities = LooksUp.capabilities


class LooksUpUndeclared(LooksUp):
    capabilities = GoodChannel.capabilities


def test_a_delivery_lookup_is_declared_and_implemented_together(folder):
    make_kit(GoodChannel, folder).test_delivery_lookup_is_declared()
    make_kit(LooksUp, folder).test_delivery_lookup_is_declared()
    assert "does not implement delivery_find" in failure(make_kit(DeclaresLookupOnly, folder).test_delivery_lookup_is_declared)
    message = failure(make_kit(LooksUpUndeclared, folder).test_delivery_lookup_is_declared)
    assert "does not declare Feature.DELIVERY_LOOKUP" in message
