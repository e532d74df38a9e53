"""The phone plugin against ../shared/corpus/phone: the PBXs' own layout definitions and Twilio's known answers."""

from __future__ import annotations

import itertools
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from channels_plugins.phone import layouts
from channels_plugins.phone.cti import twilio_signature, twilio_valid
from channels_plugins.phone.adapter import PhoneConfig
from omnidesk.plugins.config import load_config
from omnidesk.plugins.contract import ConfigInvalid, InboundMessage, RawEvent

from .helpers import make_plugin


@pytest.fixture
def phone_corpus(shared_corpus: str) -> Path:
    return Path(shared_corpus) / "phone"


def test_twilio_signature_vector(phone_corpus: Path) -> None:
    vector = json.loads((phone_corpus / "twilio" / "twilio_signature_test_vector.json").read_text())
    token, url = vector["auth_token"], vector["url"]
    assert twilio_signature(token, url, vector["form_params"]) == vector["expected_X-Twilio-Signature"]
    dup = vector["duplicate_multidict_case"]
    assert twilio_signature(token, url, [tuple(p) for p in dup["params"]]) == dup["expected"]
    case = vector["json_body_case"]
    body = case["body"].encode()
    signature = twilio_signature(token, case["url_with_body_hash"])
    assert twilio_valid(token, case["url_with_body_hash"], body, signature)
    assert not twilio_valid(token, case["url_with_body_hash"], body + b" ", signature)


def _sample_lines(text: str, pattern: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(pattern, text, re.M)]


def test_asterisk_cdr_custom_sample_layouts(phone_corpus: Path) -> None:
    text = (phone_corpus / "asterisk" / "cdr_custom.conf.sample").read_text()
    mappings = _sample_lines(text, r"^;((?:Master|Simple)\.csv\s*=>.*)$")
    fields = _sample_lines(text, r"^;(fields\s*=.*)$")
    assert len(mappings) == 3 and len(fields) == 2
    ours = {name: layouts.build("asterisk_custom", name).columns for name in ("legacy", "legacy_hires", "advanced")}
    assert layouts.build("asterisk_custom", mappings[0]).columns == ours["legacy"]
    assert layouts.build("asterisk_custom", mappings[1]).columns == ours["legacy_hires"]
    assert layouts.build("asterisk_custom", fields[0]).columns == ours["advanced"]
    names = [c.name for c in ours["legacy"]]
    assert names[:3] == ["clid", "src", "dst"] and names[-3:] == ["uniqueid", "userfield", "sequence"]
    with pytest.raises(ConfigInvalid, match="missed call cannot be told"):
        load_config(PhoneConfig, {"cdr_format": "asterisk_custom", "cdr_template": mappings[2]}, {})


def test_asterisk_cdr_csv_options_every_combination(phone_corpus: Path) -> None:
    text = (phone_corpus / "asterisk" / "cdr.conf.sample").read_text()
    for option in ("loguniqueid", "loguserfield", "newcdrcolumns"):
        assert option in text
    base = ['""', '"07700900123"', '"200"', '"from-trunk"', '""', '"PJSIP/t-1"', '"PJSIP/201-2"', '"Dial"', '""',
            '"2024-01-15 09:00:00"', '"2024-01-15 09:00:05"', '"2024-01-15 09:01:00"', "60", "55", '"ANSWERED"',
            '"DOCUMENTATION"']
    for uniq, user, new in itertools.product((False, True), repeat=3):
        row = base + (['"1705309200.5"'] if uniq else []) + (['"note"'] if user else []) + \
            (['""', '"1705309200.5"', "1"] if new else [])
        (item,) = make_plugin().parse(RawEvent(body=(",".join(row) + "\n").encode()))
        assert isinstance(item, InboundMessage), (uniq, user, new, item)
        assert item.external_id == "1705309200.5" if uniq else item.external_id.startswith("cdr-")
        assert item.call.notes == ("note" if user else "")


def test_freeswitch_templates_match_the_sample(phone_corpus: Path) -> None:
    root = ET.parse(phone_corpus / "freeswitch" / "cdr_csv.conf.xml").getroot()
    default = root.find("./settings/param[@name='default-template']").get("value")  # type: ignore[union-attr]
    assert default == "example"
    templates = {t.get("name"): t.text or "" for t in root.iter("template")}
    assert set(templates) == set(layouts.FREESWITCH_SAMPLES)
    for name, text in templates.items():
        from_text = layouts.build("freeswitch", text)
        assert from_text == layouts.build("freeswitch", name), name
        load_config(PhoneConfig, {"cdr_format": "freeswitch", "cdr_template": text}, {})
