"""Personal data in a reply's text: e-mail addresses, phone numbers, card and account numbers. Pure.

Used to hold a PUBLIC reply that would publish such data; false positives only cost the agent
a click ("send privately instead" / "send anyway"), a miss publishes a customer's card number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
#: IBAN shape: two letters, two check digits, 11–30 alphanumerics (spaces allowed in groups of four)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
#: digit runs with the usual separators (spaces, dashes, dots, slashes, parentheses)
_DIGITS = re.compile(r"(?<![\w+])\+?\(?\d[\d\s().\-/]{5,}\d(?!\w)")

#: a bare run of this many digits that is neither a card nor a phone is still account-like
ACCOUNT_MIN_DIGITS = 8


@dataclass(frozen=True)
class Finding:
    kind: str  # "email address", "phone number", "card number", "account number"
    text: str


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(value: str) -> bool:
    compact = value.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def _looks_like_date_or_time(raw: str) -> bool:
    return bool(re.fullmatch(r"\d{1,4}[./\-]\d{1,2}[./\-]\d{1,4}", raw.strip()))


def pii_find(text: str) -> list[Finding]:
    """Every personal-data-looking span in `text`, in order of appearance."""
    found: list[tuple[int, Finding]] = []
    taken: list[tuple[int, int]] = []

    def add(start: int, end: int, finding: Finding) -> None:
        if any(s < end and start < e for s, e in taken):
            return
        taken.append((start, end))
        found.append((start, finding))

    for m in _EMAIL.finditer(text):
        add(m.start(), m.end(), Finding("email address", m.group(0)))
    for m in _IBAN.finditer(text):
        if _iban_ok(m.group(0)):
            add(m.start(), m.end(), Finding("account number", m.group(0)))
    for m in _DIGITS.finditer(text):
        raw = m.group(0).strip()
        digits = re.sub(r"\D", "", raw)
        if _looks_like_date_or_time(raw):
            continue
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            add(m.start(), m.end(), Finding("card number", raw))
        elif 7 <= len(digits) <= 15 and (raw.startswith(("+", "(", "0")) or re.search(r"[\s\-.()]", raw)):
            add(m.start(), m.end(), Finding("phone number", raw))
        elif len(digits) >= ACCOUNT_MIN_DIGITS:
            add(m.start(), m.end(), Finding("account number", raw))
    return [f for _, f in sorted(found, key=lambda p: p[0])]


def pii_summary(findings: list[Finding]) -> str:
    """'an email address (a@b.com) and a card number (…1111)': for the agent, card numbers masked."""
    parts = []
    for f in findings:
        shown = f.text if f.kind in ("email address", "phone number") else "…" + re.sub(r"\W", "", f.text)[-4:]
        parts.append(f"{'an' if f.kind[0] in 'aeiou' else 'a'} {f.kind} ({shown})")
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]
