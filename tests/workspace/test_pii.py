"""The PII detector behind the public-reply guard: pure, no database."""

import pytest

from omnidesk.tickets.pii import luhn_ok, pii_find, pii_summary


@pytest.mark.parametrize("text, kind", [
    ("write to ada.lovelace+desk@example.co.uk please", "email address"),
    ("call +44 20 7946 0958 today", "phone number"),
    ("call (555) 123-4567", "phone number"),
    ("ring 0161 496 0000", "phone number"),
    ("card 4111 1111 1111 1111 exp 12/27", "card number"),
    ("card 5500-0000-0000-0004", "card number"),
    ("IBAN GB82 WEST 1234 5698 7654 32", "account number"),
    ("iban DE89370400440532013000", "account number"),
    ("account 123456789012", "account number"),
])
def test_finds(text, kind):
    assert [f.kind for f in pii_find(text)] == [kind]


@pytest.mark.parametrize("text", [
    "Booking ref is QX7781, the 08:12 from Leeds.",
    "We will be back on 2024-05-01 at 10:30.",
    "Your order #4512 is on its way, 3 items.",
    "Sorry about this. We have sent you a private message so we can sort it out.",
    "see https://status.example.com/leeds-line",
    "",
])
def test_leaves_ordinary_text_alone(text):
    assert pii_find(text) == []


def test_luhn():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")


def test_summary_masks_card_numbers():
    summary = pii_summary(pii_find("mail a@b.io, card 4111 1111 1111 1111"))
    assert summary == "an email address (a@b.io) and a card number (…1111)"
