"""Every parser fuzzed with hypothesis: near-valid payloads built from the recorded ones, and raw bytes.

The contract (omnidesk/plugins/contract.py): `parse()` returns contract items (an `Invalid` for a
bad record inside a good batch) or raises a PluginError subclass — MalformedPayload or
UnsupportedEvent — and never anything else; it stays pure (no network). Account settings that a
manager types (CDR templates, column maps, patterns) give ConfigInvalid and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels_plugins.phone import layouts
from omnidesk.plugins.config import load_config
from omnidesk.plugins.contract import ChannelPlugin, InboundMessage, RawEvent
from omnidesk.plugins.errors import ConfigInvalid, PluginError
from omnidesk.plugins.fixtures import check_items, run_pure
from tests.plugins.api import test_conformance as api_kit
from tests.plugins.email import test_conformance as email_kit
from tests.plugins.facebook import test_conformance as facebook_kit
from tests.plugins.phone import test_cdr as cdr_tests
from tests.plugins.phone import test_conformance as phone_kit
from tests.plugins.phone.helpers import make_plugin as phone_plugin
from tests.plugins.twitter import test_conformance as twitter_kit

from . import strategies as fz
from .conftest import fuzz_settings


def plugin_of(kit: Any) -> ChannelPlugin[Any]:
    """The plugin as its conformance test configures it."""
    return kit().make_plugin()  # type: ignore[no-any-return]


def parse_keeps_the_contract(plugin: ChannelPlugin[Any], body: bytes, headers: Mapping[str, str] | None = None) -> None:
    raw = RawEvent(body=body, headers=dict(headers or {}))
    try:
        items = run_pure(plugin.parse, raw, name=plugin.kind)
    except PluginError as exc:
        assert exc.message.strip(), f"{type(exc).__name__} without a message on {body[:200]!r}"
        return
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(
            f"{plugin.kind}.parse() raised {type(exc).__name__}: {exc} on {body[:300]!r}; "
            "bad input must raise MalformedPayload/UnsupportedEvent or give an Invalid item"
        ) from exc
    check_items(items, plugin.event_types, f"{plugin.kind} {body[:120]!r}")
    for item in items:
        if isinstance(item, InboundMessage):
            assert isinstance(item.external_id, str) and item.external_id.strip(), f"empty external_id in {item!r}"
            assert isinstance(item.text, str) and isinstance(item.thread_key, str), item


def fixture_bodies(plugin: str, *suffixes: str) -> list[bytes]:
    folder = fz.FIXTURES / plugin / "fixtures"
    return [p.read_bytes() for p in sorted(folder.iterdir())
            if p.name.endswith(suffixes) and not p.name.endswith((".expected.json", ".headers.json"))]


# --- JSON channels ---------------------------------------------------------------------------

API = plugin_of(api_kit.TestApiConformance)
TWITTER = plugin_of(twitter_kit.TestTwitterConformance)
FACEBOOK = plugin_of(facebook_kit.TestFacebookConformance)
PHONE = plugin_of(phone_kit.TestPhoneConformance)


def json_payloads(plugin: str, corpus: str = "") -> st.SearchStrategy[bytes]:
    docs = fz.json_fixtures(plugin, corpus=corpus)
    return st.one_of(fz.mutated_json(docs), fz.mutated_json(docs), fz.raw_variants(fixture_bodies(plugin, ".json")))


@given(json_payloads("api"))
@fuzz_settings(200)
def test_api_channel(body: bytes) -> None:
    parse_keeps_the_contract(API, body, {"Content-Type": "application/json"})


@given(json_payloads("twitter", corpus="twitter/tweepy-decoded"))
@fuzz_settings(200)
def test_twitter(body: bytes) -> None:
    parse_keeps_the_contract(TWITTER, body, {"Content-Type": "application/json"})


@given(json_payloads("facebook", corpus="facebook/restfb-webhooks"))
@fuzz_settings(200)
def test_facebook(body: bytes) -> None:
    parse_keeps_the_contract(FACEBOOK, body, {"Content-Type": "application/json"})


@given(json_payloads("phone"))
@fuzz_settings(150)
def test_phone_cti_events(body: bytes) -> None:
    parse_keeps_the_contract(PHONE, body, {"Content-Type": "application/json"})


TWILIO = fixture_bodies("phone", ".form")


@given(st.one_of(fz.mutated_form(TWILIO), fz.raw_variants(TWILIO)))
@fuzz_settings(150)
def test_phone_twilio_callbacks(body: bytes) -> None:
    parse_keeps_the_contract(PHONE, body, {"Content-Type": "application/x-www-form-urlencoded"})


# --- call detail records: every layout, with the settings it is read with ----------------------

CDR_FILES = {**{name: (cdr_tests.FILES / name).read_bytes() for name in cdr_tests.LAYOUTS},
             "asterisk_master.csv": (fz.FIXTURES / "phone" / "fixtures" / "cdr__asterisk_master_csv.csv").read_bytes()}
CDR_SETTINGS = {**cdr_tests.LAYOUTS, "asterisk_master.csv": {}}


@pytest.mark.parametrize("name", sorted(CDR_FILES))
def test_phone_cdr_files(name: str) -> None:
    plugin = phone_plugin(CDR_SETTINGS[name])
    body = CDR_FILES[name]
    delimiter = CDR_SETTINGS[name].get("csv_delimiter", ",")

    @given(st.one_of(fz.mutated_csv([body], delimiter), fz.mutated_csv([body], delimiter), fz.raw_variants([body])))
    @fuzz_settings(60)
    def check(data: bytes) -> None:
        parse_keeps_the_contract(plugin, data, {"Content-Type": "text/csv"})

    check()


# --- settings a manager types ------------------------------------------------------------------

TEMPLATE_TEXT = st.one_of(
    st.sampled_from(["legacy", "legacy_hires", "advanced", "example", "sql", "snom", "", "fields=", "fields=src,dst",
                     "${CSV_QUOTE(${CDR(src)})},${CDR(dst)}", "${CSV_QUOTE(${CDR(src)})", "{{{{", "}}}}", "${", "$$$",
                     '"${caller_id_name}","${caller_id_number}"', "<template name=\"x\">${a}</template>", "\x00"]),
    st.text(alphabet="${}(),\"'= abcdefsrcdtCDRQUOTE_\n<>/", max_size=60),
)
COLUMN_MAP = st.lists(
    st.one_of(st.sampled_from(["id=Call ID", "from=Caller", "to=Called", "start=Started", "=", "from=", "=X", "nope=Y",
                               "start=A=B", "billsec=Talk seconds"]), st.text(max_size=15)),
    max_size=6,
)


@given(st.sampled_from(["asterisk", "asterisk_custom", "freeswitch", "generic", "other"]), TEMPLATE_TEXT, COLUMN_MAP)
@fuzz_settings(200)
def test_cdr_layouts_from_settings(kind: str, template: str, column_map: list[str]) -> None:
    try:
        layouts.build(kind, template, tuple(column_map))
    except layouts.LayoutError as exc:
        assert str(exc).strip()


SETTINGS = st.fixed_dictionaries(
    {},
    optional={
        "cdr_format": st.sampled_from(["asterisk", "asterisk_custom", "freeswitch", "generic", "csv"]),
        "cdr_template": TEMPLATE_TEXT,
        "column_map": COLUMN_MAP,
        "internal_pattern": st.sampled_from(["(", "[", "\\", "a{99999999999}", r"\d{2,5}", "*", ""]),
        "internal_numbers": st.lists(st.sampled_from(["+44 20 7946 0000", "abc", "", "+", "0" * 40]), max_size=2),
        "default_region": st.sampled_from(["GB", "ZZ", "gb", "G", "", "1"]),
        "timezone": st.sampled_from(["UTC", "Europe/London", "Mars/Base", "", "../../etc/passwd", "\x00"]),
        "csv_delimiter": st.sampled_from([",", ";", "", ",,", "\n", "\""]),
        "chunk_rows": st.one_of(st.integers(), st.text(max_size=3)),
        "date_format": st.sampled_from(["", "%Y", "%Q", "%", "%d/%m/%Y %H:%M"]),
    },
)


@given(SETTINGS)
@fuzz_settings(150)
def test_phone_settings(data: dict[str, Any]) -> None:
    from channels_plugins.phone.adapter import PhoneConfig

    try:
        load_config(PhoneConfig, data, {})
    except ConfigInvalid as exc:
        assert str(exc).strip()


# --- email ---------------------------------------------------------------------------------------

EMAIL = plugin_of(email_kit.TestEmailConformance)
MAILS = fz.mail_bodies()


@given(fz.raw_variants(MAILS))
@fuzz_settings(60)
def test_email_raw_bytes(body: bytes) -> None:
    parse_keeps_the_contract(EMAIL, body)


@given(fz.mutated_mail(MAILS))
@fuzz_settings(150)
def test_email_near_valid(body: bytes) -> None:
    """The email plugin turns any crash into "unreadable mail (...)": a near-valid mail must not need that net."""
    parse_keeps_the_contract(EMAIL, body)
    try:
        EMAIL.parse(RawEvent(body=body))
    except PluginError as exc:
        assert not exc.message.startswith("unreadable mail ("), f"{exc.message} on {body[:300]!r}"
