"""CDR files of every layout through parse(): goldens, line numbers, chunking, quirks, settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from channels_plugins.phone import layouts
from channels_plugins.phone.adapter import PhoneConfig
from omnidesk.plugins.config import load_config
from omnidesk.plugins.contract import ConfigInvalid, Ignored, InboundMessage, Invalid, MalformedPayload, RawEvent
from omnidesk.plugins.fixtures import dumps, serialize_items

from .helpers import make_plugin

FILES = Path(__file__).parent / "cdr_files"
FIXTURES = Path(__file__).parent / "fixtures"
#: each file with the account settings it is read with
LAYOUTS = {
    "asterisk_custom_legacy.csv": {"cdr_format": "asterisk_custom", "cdr_template": "legacy"},
    "asterisk_custom_advanced.csv": {"cdr_format": "asterisk_custom", "cdr_template": "advanced"},
    "freeswitch_example.csv": {"cdr_format": "freeswitch", "timezone": "UTC"},
    "freeswitch_sql.csv": {"cdr_format": "freeswitch", "cdr_template": "sql", "timezone": "UTC"},
    "generic_export.csv": {
        "cdr_format": "generic", "default_region": "FR", "timezone": "Europe/Paris", "csv_delimiter": ";",
        "column_map": ["id=Call ID", "from=Caller", "to=Called", "start=Started", "billsec=Talk seconds",
                       "status=Result", "agent=Agent", "notes=Notes"],
    },
}


def parse_file(name: str) -> list:
    plugin = make_plugin(LAYOUTS[name])
    return plugin.parse(RawEvent(body=(FILES / name).read_bytes(), headers={"Content-Type": "text/csv"}))


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout_golden(name: str, request: pytest.FixtureRequest) -> None:
    actual = dumps(serialize_items(parse_file(name)))
    golden = FILES / (name.rsplit(".", 1)[0] + ".expected.json")
    if request.config.getoption("update_goldens", default=False):
        golden.write_text(actual, encoding="utf-8")
    assert golden.exists(), f"no golden {golden.name}: run pytest with --update-goldens and review it"
    assert json.loads(golden.read_text(encoding="utf-8")) == json.loads(actual)


def test_asterisk_custom_legacy_reports_the_short_row() -> None:
    items = parse_file("asterisk_custom_legacy.csv")
    assert [type(i).__name__ for i in items] == ["InboundMessage", "InboundMessage", "Invalid"]
    assert items[2] == Invalid("line 3", "expected 19 columns (asterisk_custom), got 17")
    assert items[0].author.display_name == "Mary Jackson" and items[0].call.answered_by == "201"


def test_asterisk_advanced_queue_answer_is_an_abandoned_call() -> None:
    answered, abandoned = parse_file("asterisk_custom_advanced.csv")
    assert answered.event_type == "call" and answered.external_id == "1705309200.1"
    assert abandoned.event_type == "missed_call" and abandoned.call.missed
    assert ("needs_callback", "true") in abandoned.metadata and "without reaching an agent" in abandoned.text


def test_freeswitch_example_template() -> None:
    answered, missed, canceled, internal, odd = parse_file("freeswitch_example.csv")
    assert answered.external_id == "2b6c3a4e-0000-4000-8000-000000000001" and answered.call.duration_s == 250
    assert answered.call.answered_by == "201"
    assert missed.event_type == canceled.event_type == "missed_call"
    assert "caller hung up" in canceled.text
    assert isinstance(internal, Ignored) and internal.event_type == "internal"
    assert odd == Invalid("line 5", "hangup_cause: 'SOMETHING_ODD' is not a FreeSWITCH hangup cause")


def test_freeswitch_sql_template_rows() -> None:
    answered, busy = parse_file("freeswitch_sql.csv")
    assert answered.event_type == "call" and busy.event_type == "missed_call" and "busy" in busy.text


def test_generic_mapping_local_times_and_bad_rows() -> None:
    ok, missed, bad_date, bad_status, short = parse_file("generic_export.csv")
    assert ok.author.identity.value == "+33142685300" and ok.call.answered_by == "Luc"
    assert ok.call.notes == "Asked about the refund" and ok.sent_at.isoformat() == "2024-01-15T09:00:00+00:00"
    assert missed.sent_at.isoformat() == "2024-01-15T09:05:00+00:00"  # naive → Europe/Paris
    assert missed.author.identity.value == "+33142685301"
    assert bad_date.where == "line 4" and "not a date" in bad_date.reason
    assert bad_status.where == "line 5" and "teleported" in bad_status.reason
    assert short == Invalid("line 6", "expected 8 columns (as the header row), got 3")


def test_generic_header_without_a_mapped_column_fails_the_whole_file() -> None:
    plugin = make_plugin(LAYOUTS["generic_export.csv"])
    with pytest.raises(MalformedPayload, match="no column 'Caller'"):
        plugin.parse(RawEvent(body=b"Call ID;Who;Called;Started;Talk seconds;Result\n1;2;3;4;5;6\n"))


def test_asterisk_local_time_is_converted_with_summer_time() -> None:
    items = make_plugin().parse(RawEvent(body=(FIXTURES / "cdr__asterisk_master_csv.csv").read_bytes()))
    first = items[0]
    assert first.sent_at.isoformat() == "2024-07-01T08:00:00+00:00"  # 09:00 BST
    utc = make_plugin({"timezone": "UTC"}).parse(RawEvent(body=(FIXTURES / "cdr__asterisk_master_csv.csv").read_bytes()))
    assert utc[0].sent_at.isoformat() == "2024-07-01T09:00:00+00:00"


def test_ring_group_rows_of_one_call_are_merged_into_the_answered_one() -> None:
    items = make_plugin().parse(RawEvent(body=(FIXTURES / "cdr__asterisk_master_csv.csv").read_bytes()))
    ann = [i for i in items if isinstance(i, InboundMessage) and i.external_id == "1719823800.11"]
    assert len(ann) == 1 and ann[0].event_type == "call" and ann[0].call.answered_by == "203"


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ([], ()),
        (["1719820800.1"], ("uniqueid",)),
        (["pbx1-1719820800.1"], ("uniqueid",)),
        (["VIP customer"], ("userfield",)),
        (["1719820800.1", "x"], ("uniqueid", "userfield")),
        (["", "1719820800.1", "3"], ("peeraccount", "linkedid", "sequence")),
        (["1719820800.1", "x", "", "1719820800.1", "3"], ("uniqueid", "userfield", "peeraccount", "linkedid", "sequence")),
        (["a"] * 6, None),
    ],
)
def test_asterisk_optional_columns_are_told_from_the_count(extra: list[str], names: tuple[str, ...] | None) -> None:
    assert layouts.asterisk_extras(extra) == names


def test_rows_without_uniqueid_get_a_stable_id() -> None:
    row = (b'"","07700900123","200","from-trunk","","PJSIP/t-1","","Dial","","2024-01-15 09:00:00","",'
           b'"2024-01-15 09:00:20",20,0,"NO ANSWER","DOCUMENTATION"\n')
    one = make_plugin().parse(RawEvent(body=row))[0]
    again = make_plugin().parse(RawEvent(body=row + row.replace(b"09:00:00", b"09:30:00")))
    assert one.external_id.startswith("cdr-") and again[0].external_id == one.external_id
    assert again[1].external_id != one.external_id


def test_split_keeps_file_line_numbers() -> None:
    body = (FIXTURES / "cdr__asterisk_master_csv.csv").read_bytes()
    plugin = make_plugin({"chunk_rows": 3})
    chunks = plugin.split_file(body)
    assert [c.headers["X-Omnidesk-Cdr-Line"] for c in chunks] == ["1", "4", "7", "10", "13"]
    assert b"".join(c.body for c in chunks) == body
    whole = plugin.parse(RawEvent(body=body))
    assert [item for c in chunks for item in plugin.parse(c)] == whole  # same items, same line numbers
    assert len({c.dedupe_key for c in chunks}) == 5 and plugin.split_file(body) == chunks


def test_split_never_cuts_between_rows_of_one_call() -> None:
    body = (FIXTURES / "cdr__asterisk_master_csv.csv").read_bytes()
    plugin = make_plugin({"chunk_rows": 7})  # rows 7 and 8 are one ring-group call
    chunks = plugin.split_file(body)
    assert [(c.headers["X-Omnidesk-Cdr-Line"], c.headers["X-Omnidesk-Cdr-Rows"]) for c in chunks] == [("1", "8"), ("9", "6")]
    assert [item for c in chunks for item in plugin.parse(c)] == plugin.parse(RawEvent(body=body))


def test_generic_chunks_repeat_the_header_row() -> None:
    plugin = make_plugin({**LAYOUTS["generic_export.csv"], "chunk_rows": 2})
    chunks = plugin.split_file((FILES / "generic_export.csv").read_bytes())
    assert len(chunks) == 3 and all(c.body.startswith(b"Call ID;") for c in chunks)
    assert [c.headers["X-Omnidesk-Cdr-Line"] for c in chunks] == ["2", "4", "6"]
    assert [i.where for c in chunks for i in plugin.parse(c) if isinstance(i, Invalid)] == ["line 4", "line 5", "line 6"]


def test_an_unclosed_quote_only_breaks_its_own_row() -> None:
    good = (b'"","07700900123","200","from-trunk","","PJSIP/t-1","PJSIP/201-2","Dial","a","2024-01-15 09:00:00",'
            b'"2024-01-15 09:00:05","2024-01-15 09:01:00",60,55,"ANSWERED","DOCUMENTATION","1705309200.9"\n')
    broken = b'"","07700900124,"200"\n'
    items = make_plugin().parse(RawEvent(body=broken + good))
    assert isinstance(items[0], Invalid) and items[0].where == "line 1"
    assert isinstance(items[1], InboundMessage) and items[1].external_id == "1705309200.9"


def test_latin1_names_and_empty_files() -> None:
    row = ('"","07700900123","200","from-trunk","""Zoë Müller"" <07700900123>","PJSIP/t-1","PJSIP/201-2","Dial","",'
           '"2024-01-15 09:00:00","2024-01-15 09:00:05","2024-01-15 09:01:00",60,55,"ANSWERED","DOCUMENTATION","1.5"\n')
    item = make_plugin().parse(RawEvent(body=row.encode("latin-1")))[0]
    assert item.author.display_name == "Zoë Müller"
    with pytest.raises(MalformedPayload, match="empty"):
        make_plugin().parse(RawEvent(body=b"\n\n", headers={"Content-Type": "text/csv"}))


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"timezone": "Mars/Olympus"}, "not an IANA time zone"),
        ({"internal_pattern": "(\\d"}, "internal_pattern"),
        ({"cdr_format": "asterisk_custom", "cdr_template": "simple"}, "missed call cannot be told"),
        ({"cdr_format": "freeswitch", "cdr_template": "nonsense"}, "neither a template"),
        ({"cdr_format": "generic", "column_map": ["from=Caller"]}, "start"),
        ({"cdr_format": "generic", "column_map": ["from=Caller", "start=At", "colour=Blue"]}, "unknown field"),
        ({"cdr_format": "generic", "column_map": ["from=Caller", "start=At"]}, "status, billsec or answer"),
        ({"default_region": "GBR"}, "two-letter"),
        ({"internal_numbers": ["not a number"]}, "internal_numbers"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(config: dict, problem: str) -> None:
    with pytest.raises(ConfigInvalid, match=problem):
        load_config(PhoneConfig, {"default_region": "GB", **config}, {})


def test_internal_numbers_make_agents_mobiles_internal() -> None:
    plugin = make_plugin({"internal_numbers": ["07700 900999"]})
    row = (b'"","07700900999","200","from-trunk","","PJSIP/t-1","PJSIP/201-2","Dial","","2024-01-15 09:00:00",'
           b'"2024-01-15 09:00:05","2024-01-15 09:01:00",60,55,"ANSWERED","DOCUMENTATION","1705309200.77"\n')
    (item,) = plugin.parse(RawEvent(body=row))
    assert isinstance(item, Ignored) and item.event_type == "internal"
