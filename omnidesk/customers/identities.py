"""Normalizing identity values so the same person on the same channel is always one row. No Django."""

from __future__ import annotations

import phonenumbers

from omnidesk.plugins.contract import IdentityKind, IdentityRef


class InvalidIdentity(ValueError):
    pass


def normalize(ref: IdentityRef, *, default_region: str = "") -> IdentityRef:
    value = ref.value.strip()
    if not value:
        raise InvalidIdentity(f"empty {ref.kind.value} identity")
    if ref.kind is IdentityKind.EMAIL:
        if "@" not in value or value.startswith("@") or value.endswith("@") or " " in value:
            raise InvalidIdentity(f"{value!r} is not an email address")
        value = value.lower()
    elif ref.kind is IdentityKind.PHONE:
        value = normalize_phone(value, default_region=default_region)
    return IdentityRef(kind=ref.kind, value=value, namespace=ref.namespace)


def normalize_phone(value: str, *, default_region: str = "") -> str:
    """E.164, using the account's default region for national numbers."""
    try:
        number = phonenumbers.parse(value, default_region.upper() or None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentity(f"{value!r} is not a phone number: {exc}") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidIdentity(f"{value!r} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
