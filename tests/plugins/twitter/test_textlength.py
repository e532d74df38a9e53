"""Weighted tweet length against twitter-text's own conformance cases (validate.yml), plus properties.

The YAML is copied from ../shared/corpus (twitter/twitter-text @ 30e2430d, Apache-2.0) by
reading it from there when present; the cases that matter most are also pinned here so the
module runs without ../shared.

Categories of validate.yml:
- WeightedTweetsWithDiscountedEmojiCounterTest: config v3, what X counts today — all fields checked.
- WeightedTweetsCounterTest: config v2 (emoji counted per code point) — all fields checked.
- UnicodeDirectionalMarkerCounterTest: v3 — all fields checked.
- tweets: validity under the 140-character config v1 (the file predates 280) — checked with V1.
- usernames, lists, hashtags, urls, urls_without_protocol: twitter-text's *validators* for those
  entities (is this a valid @name / URL?), not length counting — out of scope: a reply's length
  never depends on them (URL *extraction*, which does, is exercised by the counter cases).
"""

from __future__ import annotations

import os
import unicodedata

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from channels_plugins.twitter.textlength import V1, V2, V3, extract_urls, parse_tweet, split_thread, weighted_length

GROUPS = {
    "WeightedTweetsWithDiscountedEmojiCounterTest": V3,
    "WeightedTweetsCounterTest": V2,
    "UnicodeDirectionalMarkerCounterTest": V3,
}
VALIDATE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "shared", "corpus", "twitter", "twitter-text", "validate.yml")


def _cases() -> list[object]:
    if not os.path.exists(VALIDATE):
        return [pytest.param(None, None, None, marks=pytest.mark.skip(reason=f"{VALIDATE} is absent"))]
    with open(VALIDATE, encoding="utf-8") as fh:
        tests = yaml.safe_load(fh)["tests"]
    out: list[object] = []
    for group, config in GROUPS.items():
        for case in tests[group]:
            out.append(pytest.param(config, case["text"], case["expected"], id=f"{group}:{case['description'][:60]}"))
    for case in tests["tweets"]:
        out.append(pytest.param(V1, case["text"], {"valid": case["expected"]}, id=f"tweets:{case['description'][:60]}"))
    return out


@pytest.mark.parametrize(("config", "text", "expected"), _cases())
def test_validate_yml(config, text, expected) -> None:  # type: ignore[no-untyped-def]
    r = parse_tweet(text, config)
    got = {
        "weightedLength": r.weighted_length, "valid": r.valid, "permillage": r.permillage,
        "displayRangeStart": r.display_range_start, "displayRangeEnd": r.display_range_end,
        "validRangeStart": r.valid_range_start, "validRangeEnd": r.valid_range_end,
    }
    assert {k: got[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("Hi http://test.co", 26),
        ("see example.com/help and https://x.com/a/status/1", 4 + 23 + 5 + 23),
        ("故人西辞黄鹤楼", 14),
        ("🙋🏽👨‍🎤", 4),
        ("👨‍👩‍👧‍👦", 2),
        ("1⃣", 2),
        ("🇬🇧", 2),
        ("Á", 1),  # A + combining acute: NFC makes it one character
        ("randomurlrandomurlrandomurlrandomurlrandomurlrandomurlrandomurls.com", 68),  # a 64-char label is no host
        ("", 0),
    ],
)
def test_pinned_lengths(text: str, length: int) -> None:
    assert weighted_length(text) == length


def test_urls_are_found_with_and_without_protocol() -> None:
    text = "Track it at https://track.example.com/55871?x=1 or example.co.uk/help. Not foo.invalidtld"
    found = [text[s:e] for s, e in extract_urls(text)]
    assert found == ["https://track.example.com/55871?x=1", "example.co.uk/help"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_length_is_never_below_a_unit_per_character_group(text: str) -> None:
    n = weighted_length(text)
    assert n >= 0
    assert (n == 0) == (unicodedata.normalize("NFC", text) == "")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=0x10FF, blacklist_categories=("Cs",)), max_size=200))
def test_text_without_dots_weighs_each_code_point_by_range(text: str) -> None:
    if "." in text:
        return  # a dot may make a URL
    normalized = unicodedata.normalize("NFC", text)  # composing may leave the 0–4351 range (O + horn + grave = U+1EDC)
    assert weighted_length(text) == sum(1 if ord(c) <= 4351 else 2 for c in normalized)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["word", "longerword", "émoji🙂", "故人西辞", "https://example.com/a", "x" * 40]),
                min_size=1, max_size=120))
def test_split_thread_parts_fit_and_keep_every_word(words: list[str]) -> None:
    text = " ".join(words)
    parts = split_thread(text)
    assert all(weighted_length(p) <= 280 for p in parts)
    if len(parts) == 1:
        assert parts == [text]
        return
    n = len(parts)
    assert [p.rsplit(" (", 1)[1] for p in parts] == [f"{k}/{n})" for k in range(1, n + 1)]
    assert " ".join(p.rsplit(" (", 1)[0] for p in parts).split() == text.split()


def test_one_overlong_word_is_cut() -> None:
    parts = split_thread("a" * 600)
    assert len(parts) == 3 and all(weighted_length(p) <= 280 for p in parts)
    assert "".join(p.rsplit(" (", 1)[0] for p in parts) == "a" * 600
