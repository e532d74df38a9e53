"""The conformance kit: the contract every channel plugin honours, checked on its recorded payloads.

A plugin's test module subclasses `PluginConformance`, points it at a folder of fixtures
(`<event_type>__<scenario>.<ext>`, optional `<name>.headers.json`, golden
`<name>.expected.json`) and, for a push plugin, says how to `sign` a request; the kit runs
about a dozen tests on it. The pytest plugin (`omnidesk.plugins.pytest_plugin`, loaded by the
`pytest11` entry point) adds `--update-goldens`. See docs/plugins.md.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest

from .config import load_config
from .contract import (
    ChannelPlugin,
    Feature,
    Headers,
    IdentityKind,
    IdentityRef,
    Ignored,
    InboundMessage,
    Invalid,
    OutboundReply,
    RawEvent,
    WebhookRequest,
)
from .errors import (
    CapabilityError,
    MalformedPayload,
    PluginError,
    ReplyTooLong,
    ReplyWindowClosed,
    SignatureInvalid,
    UnsupportedEvent,
)
from .fixtures import (
    ERROR_PREFIXES,
    FixtureFile,
    NetworkAttempt,
    check_items,
    discover,
    dumps,
    flip_byte,
    network_blocked,
    orphans,
    registered,
    run_pure,
    sample_config,
    serialize_error,
    serialize_items,
    shortest_over,
)

__all__ = ["REWRITTEN", "NetworkAttempt", "PluginConformance", "network_blocked", "registered"]

#: goldens rewritten by --update-goldens in this session (listed in the terminal summary)
REWRITTEN = pytest.StashKey[list[str]]()


class PluginConformance:
    """Subclass in a `Test...` class; set `plugin_class` and `fixtures_dir` (and what else applies)."""

    __test__ = False

    plugin_class: ClassVar[type[ChannelPlugin[Any]]]
    #: the folder of recorded payloads, their header sidecars and goldens
    fixtures_dir: ClassVar[Path]
    #: the account's settings and secrets; missing ones get placeholders (secrets: "test-secret")
    config: ClassVar[Mapping[str, Any] | None] = None
    secrets: ClassVar[Mapping[str, str] | None] = None
    account_slug: ClassVar[str] = "conformance"
    #: a well-formed payload of an event type the plugin does not declare (must give UnsupportedEvent)
    unknown_payload: ClassVar[bytes | None] = None
    unknown_payload_headers: ClassVar[Mapping[str, str]] = {}
    #: the fixture taken all the way to a ticket (default: the first that yields a message)
    ticket_fixture: ClassVar[str] = ""
    webhook_url: ClassVar[str] = "https://desk.example.com/hooks/conformance/"
    #: examples hypothesis tries on garbage input
    garbage_examples: ClassVar[int] = 50

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__test__" not in cls.__dict__:
            # Collected once a plugin is named; an intermediate base without one is not.
            cls.__test__ = hasattr(cls, "plugin_class")

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        files = discover(Path(self.fixtures_dir))
        if "fixture_file" in metafunc.fixturenames:
            metafunc.parametrize("fixture_file", [pytest.param(f, id=f.name) for f in files])
        if "good_fixture" in metafunc.fixturenames:
            good = [f for f in files if not f.expects_error]
            metafunc.parametrize("good_fixture", [pytest.param(f, id=f.name) for f in good])

    # --- hooks a subclass may override ----------------------------------------------------

    def sign(self, request: WebhookRequest) -> WebhookRequest:
        """Push plugins: return `request` with a valid signature (as the vendor would send it)."""
        pytest.fail(f"{type(self).__name__}: a push plugin's conformance class must define sign(self, request)")

    def make_reply(self, **changes: Any) -> OutboundReply:
        """A reply the channel accepts apart from what `changes` break."""
        caps = self.plugin_class.capabilities
        reply = OutboundReply(
            idempotency_key="conformance-reply-1",
            to=IdentityRef(IdentityKind.EXTERNAL, "conformance-customer", self.account_slug),
            text="Thanks for telling us, we are looking into it.",
            visibility="private" if caps.allows("private") or not caps.allows("public") else "public",
            ticket_ref=1,
        )
        return dataclasses.replace(reply, **changes)

    # --- helpers --------------------------------------------------------------------------

    @staticmethod
    def with_headers(request: WebhookRequest, headers: Mapping[str, str]) -> WebhookRequest:
        """`request` with `headers` added or replaced (for `sign`)."""
        return dataclasses.replace(request, headers=Headers({**dict(request.headers.items()), **headers}))

    def settings_and_secrets(self) -> tuple[dict[str, Any], dict[str, str]]:
        return sample_config(self.plugin_class.config_schema, {**(self.config or {}), **(self.secrets or {})})

    def make_plugin(self, *, secrets: Mapping[str, str] | None = None) -> ChannelPlugin[Any]:
        data, stored = self.settings_and_secrets()
        config = load_config(self.plugin_class.config_schema, data, {**stored, **(secrets or {})})
        return self.plugin_class(config, account_slug=self.account_slug)

    def raw_event(self, fixture: FixtureFile, *, source_key: str = "") -> RawEvent:
        return RawEvent(body=fixture.body(), headers=fixture.headers(), source_key=source_key)

    def webhook_request(self, body: bytes, headers: Mapping[str, str]) -> WebhookRequest:
        return WebhookRequest(method="POST", url=self.webhook_url, headers=Headers(headers), query={}, body=body)

    def call_pure(self, request: pytest.FixtureRequest, step: Callable[..., Any], *args: Any) -> Any:
        """Run `step(*args)` with the database and the network blocked; fail if it reached for either."""
        return run_pure(step, *args, db_blocker=_db_blocker(request), name=self.plugin_class.kind)

    def outcome(self, request: pytest.FixtureRequest, fixture: FixtureFile, *, source_key: str = "") -> Any:
        """What parse() makes of a fixture, as golden JSON; fails on anything the naming forbids."""
        try:
            items = self.call_pure(request, self.make_plugin().parse, self.raw_event(fixture, source_key=source_key))
        except PluginError as exc:
            if not fixture.expects_error:
                pytest.fail(
                    f"{fixture}: parse() raised {type(exc).__name__}: {exc}. Only "
                    f"{'__* and '.join(ERROR_PREFIXES)}__* fixtures may fail: fix the plugin or rename the fixture"
                )
            wanted = MalformedPayload if fixture.prefix == "malformed" else UnsupportedEvent
            if not isinstance(exc, wanted):
                pytest.fail(f"{fixture}: parse() must raise {wanted.__name__}, raised {type(exc).__name__}: {exc}")
            return serialize_error(exc)
        except AssertionError:
            raise
        except Exception as exc:
            raise AssertionError(
                f"{fixture}: parse() crashed with {type(exc).__name__}: {exc}; it must raise a PluginError subclass"
            ) from exc
        if fixture.expects_error:
            pytest.fail(f"{fixture}: a {fixture.prefix}__ fixture must make parse() raise, but it returned {items!r}")
        self.check_items(items, str(fixture))
        return serialize_items(items)

    def check_items(self, items: object, where: str) -> None:
        """parse() returned contract items with declared event types, aware times, sanitized html."""
        check_items(items, self.plugin_class.event_types, where)

    # --- the contract -------------------------------------------------------------------

    def test_declarations(self) -> None:
        from .registry import _check

        cls = self.plugin_class
        problem = _check(getattr(cls, "kind", ""), cls)
        assert problem is None, f"{cls.__qualname__} {problem}"
        assert getattr(cls, "label", ""), f"{cls.__qualname__} declares no label"
        reserved = set(cls.event_types) & set(ERROR_PREFIXES)
        assert not reserved, f"event types {sorted(reserved)} are reserved for fixtures that must fail"
        undescribed = [name for name, what in cls.event_types.items() if not what]
        assert not undescribed, f"event types without a description: {undescribed}"
        self.make_plugin()  # the test config loads

    def test_fixture_folder(self) -> None:
        folder = Path(self.fixtures_dir)
        files = discover(folder)
        if not files:
            pytest.fail(
                f"no fixtures in {folder}: record one real payload per event type as <event_type>__<scenario>.<ext>"
            )
        declared = set(self.plugin_class.event_types)
        problems = []
        unnamed = [f.path.name for f in files if not f.scenario]
        if unnamed:
            problems.append(f"not named <event_type>__<scenario>.<ext>: {', '.join(unnamed)}")
        undeclared = sorted(
            {f.prefix for f in files if f.scenario and f.prefix not in declared and not f.expects_error}
        )
        if undeclared:
            problems.append(
                f"fixture prefixes that are not declared event types: {', '.join(undeclared)} "
                f"(declared: {', '.join(sorted(declared))}; or use malformed__/unsupported__)"
            )
        uncovered = sorted(declared - {f.prefix for f in files})
        if uncovered:
            problems.append(f"declared event types without a fixture: {', '.join(uncovered)}")
        stray = orphans(folder)
        if stray:
            problems.append(f"sidecars without a fixture: {', '.join(p.name for p in stray)}")
        for f in files:
            try:
                f.headers()
            except ValueError as exc:
                problems.append(str(exc))
        assert not problems, f"{folder}:\n  " + "\n  ".join(problems)

    def test_golden(self, fixture_file: FixtureFile, request: pytest.FixtureRequest) -> None:
        actual = json.loads(dumps(self.outcome(request, fixture_file)))
        golden = fixture_file.golden_path
        if request.config.getoption("update_goldens", default=False):
            text = dumps(actual)
            if not golden.exists() or golden.read_text(encoding="utf-8") != text:
                golden.write_text(text, encoding="utf-8")
                request.config.stash.setdefault(REWRITTEN, []).append(str(golden))
                request.node.user_properties.append(("golden_rewritten", str(golden)))
            return
        if not golden.exists():
            pytest.fail(
                f"{fixture_file} has no golden {golden.name}: run pytest with --update-goldens "
                f"to write {golden}, then review it",
                pytrace=False,
            )
        try:
            expected = json.loads(golden.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            pytest.fail(f"{golden} is not JSON ({exc}); rewrite it with --update-goldens", pytrace=False)
        if expected != actual:
            diff = "\n".join(
                difflib.unified_diff(
                    dumps(expected).splitlines(), dumps(actual).splitlines(), golden.name, "parse() now", lineterm=""
                )
            )
            pytest.fail(
                f"{fixture_file}: parse() no longer matches its golden "
                f"(if the change is intended, run with --update-goldens and review):\n{diff}",
                pytrace=False,
            )

    def test_parse_is_deterministic_and_pure(self, fixture_file: FixtureFile, request: pytest.FixtureRequest) -> None:
        first = self.outcome(request, fixture_file)
        again = self.outcome(request, fixture_file)
        redelivered = self.outcome(request, fixture_file, source_key="redelivery")
        assert first == again, f"{fixture_file}: two parses of the same bytes differ"
        assert first == redelivered, f"{fixture_file}: a redelivery (another source_key) parses differently"

    def test_external_ids(self, good_fixture: FixtureFile, request: pytest.FixtureRequest) -> None:
        def ids(source_key: str) -> list[tuple[str, Any]]:
            items = self.call_pure(
                request, self.make_plugin().parse, self.raw_event(good_fixture, source_key=source_key)
            )
            return [
                (type(i).__name__, getattr(i, "external_id", None))
                for i in items
                if not isinstance(i, (Ignored, Invalid))
            ]

        found = ids("")
        for kind, value in found:
            assert isinstance(value, str) and value.strip(), f"{good_fixture}: {kind} has external_id {value!r}"
        # Updates name messages that already exist, so a batch may mention one twice; new messages may not.
        messages = [value for kind, value in found if kind == "InboundMessage"]
        dupes = sorted({v for v in messages if messages.count(v) > 1})
        assert not dupes, f"{good_fixture}: external ids repeated within one payload: {dupes}"
        assert ids("redelivery") == found, f"{good_fixture}: external ids change between parses"

    def test_signatures(self, fixture_file: FixtureFile, request: pytest.FixtureRequest) -> None:
        if Feature.PUSH not in self.plugin_class.capabilities.features:
            pytest.skip(f"the {self.plugin_class.kind} channel does not receive webhooks")
        plugin = self.make_plugin()
        body = fixture_file.body()
        signed = self.sign(self.webhook_request(body, fixture_file.headers()))
        try:
            self.call_pure(request, plugin.verify, signed)
        except SignatureInvalid as exc:
            pytest.fail(f"{fixture_file}: verify() refused a request signed by sign(): {exc}")
        # What sign() adds, seen on a bare request (a recorded sidecar may hold a signature already).
        probe = self.sign(self.webhook_request(body, {}))
        added_headers = {k.lower() for k in probe.headers}
        added_query = set(probe.query)
        assert added_headers or added_query, "sign() must add a header or query parameter"
        tampered = dataclasses.replace(signed, body=body[:-1] + bytes([body[-1] ^ 1]) if body else b"x")
        missing = dataclasses.replace(
            signed,
            headers=Headers({k: v for k, v in signed.headers.items() if k.lower() not in added_headers}),
            query={k: v for k, v in signed.query.items() if k not in added_query},
        )
        cases: list[tuple[str, ChannelPlugin[Any], WebhookRequest]] = [
            ("a tampered body", plugin, tampered),
            ("a missing signature", plugin, missing),
        ]
        wrong = {name: "wrong-" + value for name, value in self.settings_and_secrets()[1].items()}
        if wrong:  # (a plugin checking public-key signatures has no secret to get wrong)
            cases.append(("a signature made with another secret", self.make_plugin(secrets=wrong), signed))
        for what, checker, req in cases:
            try:
                self.call_pure(request, checker.verify, req)
            except SignatureInvalid:
                continue
            pytest.fail(f"{fixture_file}: verify() accepted {what}; it must raise SignatureInvalid")

    def test_unknown_payload_is_unsupported(self, request: pytest.FixtureRequest) -> None:
        if self.unknown_payload is None:
            pytest.fail(
                f"{type(self).__name__}: set unknown_payload = b'...', a well-formed payload of an "
                "event type the plugin does not declare"
            )
        raw = RawEvent(body=self.unknown_payload, headers=dict(self.unknown_payload_headers))
        with pytest.raises(UnsupportedEvent):
            self.call_pure(request, self.make_plugin().parse, raw)

    def test_garbage_raises_only_plugin_errors(self, request: pytest.FixtureRequest) -> None:
        from hypothesis import HealthCheck, given, settings
        from hypothesis import strategies as st

        plugin = self.make_plugin()
        bodies = [f.body() for f in discover(Path(self.fixtures_dir))] or [b"{}"]

        def check(body: bytes) -> None:
            try:
                items = self.call_pure(request, plugin.parse, RawEvent(body=body))
            except PluginError:
                return
            except AssertionError:
                raise
            except Exception as exc:
                raise AssertionError(
                    f"parse() raised {type(exc).__name__}: {exc} on {body[:120]!r}; "
                    "bad input must raise a PluginError subclass (MalformedPayload)"
                ) from exc
            self.check_items(items, f"garbage {body[:60]!r}")

        check(b"")
        for body in bodies:
            check(body[: len(body) // 2])
        truncated = st.sampled_from(bodies).flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n]))
        flipped = st.builds(flip_byte, st.sampled_from(bodies), st.integers(0, 1 << 20), st.integers(1, 255))
        garbage = st.one_of(st.binary(max_size=512), truncated, flipped)
        run = settings(
            max_examples=self.garbage_examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )(given(garbage)(check))
        run()

    def _expect_refusal(self, reply: OutboundReply, error: type[PluginError], what: str) -> None:
        plugin = self.make_plugin()
        with network_blocked() as attempts:
            for step in (plugin.check_reply, plugin.send):
                try:
                    step(reply)
                except error:
                    continue
                except NetworkAttempt:
                    pytest.fail(f"{step.__name__}() went to the network before refusing {what}")
                except Exception as exc:
                    pytest.fail(
                        f"{step.__name__}() must raise {error.__name__} for {what}, raised "
                        f"{type(exc).__name__}: {exc}" + (f" (after {attempts[0]})" if attempts else "")
                    )
                pytest.fail(f"{step.__name__}() accepted {what}; it must raise {error.__name__}")
        assert not attempts, f"refusing {what} went to the network: {attempts}"

    def test_send_refused_when_the_channel_cannot_send(self) -> None:
        if self.plugin_class.capabilities.can_send:
            pytest.skip(f"the {self.plugin_class.kind} channel can send")
        self._expect_refusal(self.make_reply(), CapabilityError, "a reply on a channel that cannot send")

    def test_reply_one_unit_too_long(self) -> None:
        caps = self.plugin_class.capabilities
        if not caps.can_send or caps.max_length is None:
            pytest.skip(f"the {self.plugin_class.kind} channel declares no max_length")
        limit = caps.max_length
        size = shortest_over(self.plugin_class.measure, limit)  # one unit over, as the channel counts
        self._expect_refusal(self.make_reply(text="x" * size), ReplyTooLong, f"a reply of {size} characters")
        try:
            self.make_plugin().check_reply(self.make_reply(text="x" * (size - 1)))
        except ReplyTooLong as exc:
            pytest.fail(f"a reply of exactly max_length ({limit} {caps.length_unit}) was refused: {exc}")
        except PluginError:
            pass  # refused for another reason (no callback configured, say): not this test's business

    def test_visibility_the_channel_does_not_allow(self) -> None:
        caps = self.plugin_class.capabilities
        refused = [v for v in ("public", "private") if not caps.allows(v)]
        if not caps.can_send or not refused:
            pytest.skip(f"the {self.plugin_class.kind} channel allows every visibility it can send")
        for visibility in refused:
            reply = self.make_reply(visibility=visibility)
            self._expect_refusal(reply, CapabilityError, f"a {visibility} reply")

    def test_reply_window(self) -> None:
        caps = self.plugin_class.capabilities
        if not caps.can_send or not caps.allows("private") or caps.reply_window is None:
            pytest.skip(f"the {self.plugin_class.kind} channel declares no reply window for private replies")
        last = max(caps.reply_window, caps.extended_reply_window or caps.reply_window)
        then = datetime.now(timezone.utc) - last - timedelta(hours=1)
        reply = self.make_reply(visibility="private", customer_last_message_at=then)
        self._expect_refusal(reply, ReplyWindowClosed, "a private reply after the reply window closed")

    def test_delivery_lookup_is_declared(self) -> None:
        cls = self.plugin_class
        declared = Feature.DELIVERY_LOOKUP in cls.capabilities.features
        implemented = cls.delivery_find is not ChannelPlugin.delivery_find
        if declared and not implemented:
            pytest.fail(f"{cls.__qualname__} declares Feature.DELIVERY_LOOKUP but does not implement delivery_find")
        if implemented and not declared:
            pytest.fail(
                f"{cls.__qualname__} implements delivery_find but does not declare Feature.DELIVERY_LOOKUP: "
                "the outbox would never ask it"
            )

    @pytest.mark.django_db
    def test_fixture_becomes_a_ticket_once(self, request: pytest.FixtureRequest) -> None:
        from omnidesk.inbox.services import inbound_event_store, inbound_events_apply
        from omnidesk.plugins.services import channel_account_save
        from omnidesk.tickets.models import Message, Ticket

        fixture, ids = self._ticket_fixture(request)
        data, secrets = self.settings_and_secrets()
        with registered(self.plugin_class):
            account = channel_account_save(
                kind=self.plugin_class.kind,
                slug=self.account_slug,
                name=f"{self.plugin_class.label} (conformance)",
                config=data,
                secrets=secrets,
            )
            for source_key, duplicate in (("", False), ("redelivery", True)):
                raw = RawEvent(body=fixture.body(), headers=fixture.headers(), source_key=source_key)
                event, created = inbound_event_store(account=account, raw=raw)
                assert created, f"{fixture}: the {'redelivery' if duplicate else 'event'} was not stored"
                inbound_events_apply(event_ids=[event.pk], limit=1)
                event.refresh_from_db()
                assert event.status == "processed", f"{fixture}: event {event.status}: {event.error}"
                assert event.summary.get("duplicates" if duplicate else "messages") == len(ids), event.summary
        for external_id in ids:
            count = Message.objects.filter(account=account, external_id=external_id).count()
            assert count == 1, f"{fixture}: {count} messages with external id {external_id!r}"
        assert Ticket.objects.filter(messages__account=account).exists(), f"{fixture}: no ticket was made"

    def _ticket_fixture(self, request: pytest.FixtureRequest) -> tuple[FixtureFile, list[str]]:
        files = [f for f in discover(Path(self.fixtures_dir)) if not f.expects_error]
        if self.ticket_fixture:
            files = [f for f in files if f.name == self.ticket_fixture]
            assert files, f"ticket_fixture {self.ticket_fixture!r} is not a fixture in {self.fixtures_dir}"
        for f in files:
            items = self.call_pure(request, self.make_plugin().parse, self.raw_event(f))
            ids = [i.external_id for i in items if isinstance(i, InboundMessage)]
            if ids:
                return f, ids
        pytest.skip("no fixture yields an InboundMessage")


def _db_blocker(request: pytest.FixtureRequest) -> Any:
    try:
        return request.getfixturevalue("django_db_blocker")
    except pytest.FixtureLookupError:
        return None
