"""Tweet length as X counts it: twitter-text's weighted length (config v3). Django-free.

X does not count characters. It NFC-normalizes the text, then weighs every code point by
range (Latin, general punctuation and friends weigh 100, everything else — CJK, most
symbols, anything outside the BMP — 200, on a scale of 100), counts every URL it would
wrap in t.co as 23 whatever its real length, and (v3) counts a whole emoji sequence —
skin tone, ZWJ family, flag, keycap — as one 200-weight unit. 280 is the limit.

This is a port of twitter-text's `parseTweet` and `extractUrlsWithIndices`; the
conformance cases of twitter-text's validate.yml pass (tests/plugins/twitter/test_textlength.py).
Indices in `ParseResult` are UTF-16 code units, as twitter-text reports them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from .tlds import COUNTRY, GENERIC


@dataclass(frozen=True)
class TextConfig:
    max_weighted_length: int = 280
    scale: int = 100
    default_weight: int = 200
    transformed_url_length: int = 23
    ranges: tuple[tuple[int, int, int], ...] = ((0, 4351, 100), (8192, 8205, 100), (8208, 8223, 100), (8242, 8247, 100))
    emoji_parsing: bool = True


#: twitter-text config v3 (what X counts today) and the older ones, for the conformance cases
V3 = TextConfig()
V2 = TextConfig(emoji_parsing=False)
V1 = TextConfig(max_weighted_length=140, scale=1, default_weight=1, ranges=(), emoji_parsing=False)


@dataclass(frozen=True)
class ParseResult:
    weighted_length: int
    valid: bool
    permillage: int
    display_range_start: int
    display_range_end: int
    valid_range_start: int
    valid_range_end: int


# --- URLs (twitter-text's regexes, in Python's dialect) ------------------------------------

_PUNCT = r"!'#%&()*+,\\\-./:;<=>?@\[\]^_{|}~$"
_SPACES = "\x09-\x0d\x20\x85\xa0\u1680\u180e\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_INVALID = "\ufffe\ufeff\uffff"
_DIRECTIONAL = "\u202a-\u202e\u061c\u200e\u200f\u2066-\u2069"
_LATIN_ACCENTS = (
    "\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff\u0100-\u024f\u0253\u0254\u0256\u0257\u0259\u025b\u0263\u0268"
    "\u026f\u0272\u0289\u028b\u02bb\u0300-\u036f\u1e00-\u1eff"
)
_DC = f"[^{_PUNCT}{_SPACES}{_INVALID}{_DIRECTIONAL}]"
_SUBDOMAIN = f"(?:(?:{_DC}(?:[_-]|{_DC})*)?{_DC}\\.)"
_DOMAIN_NAME = f"(?:(?:{_DC}(?:-|{_DC})*)?{_DC}\\.)"


def _alternation(words: frozenset[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=lambda w: (-len(w), w)))


_GTLD = f"(?:(?:{_alternation(GENERIC)})(?=[^0-9a-z@+-]|$))"
_CCTLD = f"(?:(?:{_alternation(COUNTRY)})(?=[^0-9a-z@+-]|$))"
_PUNYCODE = "(?:xn--[-0-9a-z]+)"
_SPECIAL_CCTLD = "(?:(?:co|tv)(?=[^0-9a-z@]|$))"
_DOMAIN = f"(?:{_SUBDOMAIN}*{_DOMAIN_NAME}(?:{_GTLD}|{_CCTLD}|{_PUNYCODE}))"
_PATH_CHARS = f"[a-z\u0400-\u04ff0-9!*';:=+,.$/%#\\[\\]\\-\u2013_~|&@{_LATIN_ACCENTS}]"
_PARENS = f"\\((?:{_PATH_CHARS}+|(?:{_PATH_CHARS}*\\({_PATH_CHARS}+\\){_PATH_CHARS}*))\\)"
_PATH_END = f"(?:[+\\-a-z\u0400-\u04ff0-9=_#/{_LATIN_ACCENTS}]|(?:{_PARENS}))"
_PATH = f"(?:(?:{_PATH_CHARS}*(?:{_PARENS}{_PATH_CHARS}*)*{_PATH_END})|(?:@{_PATH_CHARS}+/))"
_QUERY_CHARS = r"[a-z0-9!?*'@();:&=+$/%#\[\]\-_.,~|]"
_QUERY_END = r"[a-z0-9\-_&=#/]"
_PRECEDING = f"(?:[^A-Za-z0-9@\uff20$#\uff03{_INVALID}]|[{_DIRECTIONAL}]|^)"

_EXTRACT_URL = re.compile(
    f"({_PRECEDING})((https?://)?({_DOMAIN})(?::([0-9]+))?(/{_PATH}*)?(\\?{_QUERY_CHARS}*{_QUERY_END})?)", re.I
)
_ASCII_DOMAIN = re.compile(f"(?:(?:[\\-a-z0-9{_LATIN_ACCENTS}]+)\\.)+(?:{_GTLD}|{_CCTLD}|{_PUNYCODE})", re.I)
_INVALID_SHORT_DOMAIN = re.compile(f"^{_DOMAIN_NAME}{_CCTLD}$", re.I)
_SPECIAL_SHORT_DOMAIN = re.compile(f"^{_DOMAIN_NAME}{_SPECIAL_CCTLD}$", re.I)
_TCO = re.compile(f"^https?://t\\.co/([a-z0-9]+)(?:\\?{_QUERY_CHARS}*{_QUERY_END})?", re.I)
_NO_PROTOCOL_BAD_BEFORE = re.compile(r"[-_./]$")
_MAX_URL_LENGTH = 4096
_MAX_LABEL = 63
_MAX_TCO_SLUG = 40


def _punycode_ok(domain: str) -> bool:
    """twitter-text's idna.toAscii check: every label 1–63 characters once punycode-encoded."""
    if domain[:4].lower() == "xn--" and not _ASCII_DOMAIN.fullmatch(domain):
        return False
    for label in domain.split("."):
        try:
            encoded = label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii")
        except UnicodeError:
            return False
        if not 1 <= len(encoded) <= _MAX_LABEL:
            return False
    return True


def extract_urls(text: str) -> list[tuple[int, int]]:
    """(start, end) code-point spans of the URLs X would shorten, with or without a protocol."""
    if "." not in text:
        return []
    spans: list[list[int]] = []
    for m in _EXTRACT_URL.finditer(text):
        before, url, protocol, domain, path = m.group(1), m.group(2), m.group(3), m.group(4), m.group(6)
        start, end = m.start(2), m.end(2)
        if not _punycode_ok(domain) or len(protocol or "https://") + len(url) > _MAX_URL_LENGTH:
            continue
        if not protocol:
            if _NO_PROTOCOL_BAD_BEFORE.search(before or ""):
                continue
            last: list[int] | None = None
            for a in _ASCII_DOMAIN.finditer(domain):
                last = [start + a.start(), start + a.end()]
                if path or _SPECIAL_SHORT_DOMAIN.match(a.group(0)) or not _INVALID_SHORT_DOMAIN.match(a.group(0)):
                    spans.append(last)
            if last is not None and path:
                last[1] = end
            continue
        tco = _TCO.match(url)
        if tco:
            if len(tco.group(1)) > _MAX_TCO_SLUG:
                continue
            end = start + len(tco.group(0))
        spans.append([start, end])
    return [(s, e) for s, e in spans]


# --- emoji sequences ---------------------------------------------------------------------

_ZWJ, _VS16, _KEYCAP = 0x200D, 0xFE0F, 0x20E3
_EMOJI_RANGES = (
    (0x1F000, 0x1FAFF), (0x2600, 0x27BF), (0x2300, 0x23FF), (0x2B00, 0x2BFF), (0x2190, 0x21FF),
    (0x25A0, 0x25FF), (0x2934, 0x2935), (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3297), (0x3299, 0x3299),
    (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122), (0x2139, 0x2139), (0x24C2, 0x24C2),
)


def _is_emoji_base(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _EMOJI_RANGES)


def _is_modifier(cp: int) -> bool:
    return 0x1F3FB <= cp <= 0x1F3FF


def _is_regional(cp: int) -> bool:
    return 0x1F1E6 <= cp <= 0x1F1FF


def _is_tag(cp: int) -> bool:
    return 0xE0020 <= cp <= 0xE007F


def extract_emoji(text: str) -> list[tuple[int, int]]:
    """(start, end) code-point spans of emoji sequences, each counted once by v3.

    An approximation of twitter-text's generated emoji regex: pictographs with optional
    VS16, skin-tone modifier and tag sequence (subdivision flags), joined by ZWJ; flags
    (regional-indicator pairs); keycaps (digit, #, * with or without VS16, then U+20E3);
    © and ® only in emoji presentation (followed by VS16).
    """
    cps = [ord(c) for c in text]
    n = len(cps)
    spans: list[tuple[int, int]] = []
    i = 0
    while i < n:
        cp = cps[i]
        j = i
        if cp < 0x80 and chr(cp) in "0123456789#*":
            k = i + 1 + (i + 1 < n and cps[i + 1] == _VS16)
            if k < n and cps[k] == _KEYCAP:
                spans.append((i, k + 1))
                i = k + 1
                continue
        elif _is_regional(cp):
            j = i + 2 if i + 1 < n and _is_regional(cps[i + 1]) else i + 1
            spans.append((i, j))
            i = j
            continue
        elif cp in (0xA9, 0xAE) and i + 1 < n and cps[i + 1] == _VS16:
            spans.append((i, i + 2))
            i += 2
            continue
        elif _is_emoji_base(cp):
            j = i + 1
            while True:
                if j < n and cps[j] == _VS16:
                    j += 1
                if j < n and _is_modifier(cps[j]):
                    j += 1
                while j < n and _is_tag(cps[j]):
                    j += 1
                if j + 1 < n and cps[j] == _ZWJ and _is_emoji_base(cps[j + 1]):
                    j += 2
                    continue
                break
            spans.append((i, j))
            i = j
            continue
        i += 1
    return spans


# --- counting ----------------------------------------------------------------------------


def _weight(cp: int, config: TextConfig) -> int:
    if cp > 0xFFFF:  # twitter-text weighs the low surrogate, which no range covers
        return config.default_weight
    for start, end, weight in config.ranges:
        if start <= cp <= end:
            return weight
    return config.default_weight


def _utf16_len(text: str) -> int:
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def parse_tweet(text: str, config: TextConfig = V3) -> ParseResult:
    """twitter-text's parseTweet: weighted length, validity and the valid/display ranges."""
    normalized = unicodedata.normalize("NFC", text)
    urls = {s: e for s, e in extract_urls(normalized)}
    emoji = {s: e for s, e in extract_emoji(normalized)} if config.emoji_parsing else {}
    weighted = 0
    valid = True
    valid_display = 0
    u16 = 0  # UTF-16 offset of code point i
    i = 0
    n = len(normalized)
    while i < n:
        if i in urls:
            end = urls[i]
            weighted += config.transformed_url_length * config.scale
        elif i in emoji:
            end = emoji[i]
            weighted += config.default_weight
        else:
            end = i + 1
            weighted += _weight(ord(normalized[i]), config)
        last = normalized[end - 1]
        u16 += _utf16_len(normalized[i:end])
        if valid:
            valid = ord(last) > 0xFFFF or last not in _INVALID
        if valid and weighted <= config.max_weighted_length * config.scale:
            valid_display = u16 - 1
        i = end
    length = weighted // config.scale if weighted % config.scale == 0 else weighted / config.scale
    valid = valid and 0 < length <= config.max_weighted_length
    total = _utf16_len(text)
    return ParseResult(
        weighted_length=length,  # type: ignore[arg-type]
        valid=valid,
        permillage=int(length * 1000 // config.max_weighted_length),
        display_range_start=0,
        display_range_end=total - 1 if text else 0,
        valid_range_start=0,
        valid_range_end=valid_display + total - _utf16_len(normalized),
    )


def weighted_length(text: str, config: TextConfig = V3) -> int:
    """The number X compares with 280."""
    return parse_tweet(text, config).weighted_length


# --- splitting a long reply into a numbered thread -----------------------------------------


def _suffix(k: int, n: int) -> str:
    return f" ({k}/{n})"


def split_thread(text: str, limit: int = 280, config: TextConfig = V3) -> list[str]:
    """Split `text` at word boundaries into parts of at most `limit`, each ending " (k/n)".

    A text that fits is returned whole, unnumbered. A single word longer than a part
    (it cannot be a URL: those weigh 23) is cut between characters.
    """
    text = text.strip()
    if weighted_length(text, config) <= limit:
        return [text]
    tokens = re.findall(r"\S+\s*", text)
    guess = 2
    for _ in range(4):  # the suffix width depends on the number of parts: iterate to a fixed point
        budget = limit - weighted_length(_suffix(guess, guess), config)
        parts = _pack(tokens, budget, config)
        if len(str(len(parts))) == len(str(guess)):
            n = len(parts)
            return [p + _suffix(k, n) for k, p in enumerate(parts, 1)]
        guess = len(parts)
    raise ValueError("could not split the text into a thread")  # pragma: no cover - widths converge


def _pack(tokens: list[str], budget: int, config: TextConfig) -> list[str]:
    parts: list[str] = []
    current = ""
    for token in tokens:
        candidate = current + token
        if weighted_length(candidate.rstrip(), config) <= budget:
            current = candidate
            continue
        if current.strip():
            parts.append(current.rstrip())
        current = ""
        if weighted_length(token.rstrip(), config) <= budget:
            current = token
            continue
        for ch in token.rstrip():  # one overlong word: cut it
            if weighted_length(current + ch, config) > budget:
                parts.append(current)
                current = ""
            current += ch
        current += token[len(token.rstrip()):]
    if current.strip():
        parts.append(current.rstrip())
    return parts
