"""Encryption of channel-account secrets at rest (Fernet, key from settings)."""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from .errors import ConfigInvalid


def _fernet() -> Fernet:
    key = settings.OMNIDESK["ENCRYPTION_KEY"]
    if not key:
        key = base64.urlsafe_b64encode(hashlib.sha256(("omnidesk-secrets:" + settings.SECRET_KEY).encode()).digest())
    return Fernet(key)


def encrypt_secrets(values: dict[str, str]) -> str:
    return _fernet().encrypt(json.dumps(values, sort_keys=True).encode()).decode() if values else ""


def decrypt_secrets(token: str) -> dict[str, str]:
    if not token:
        return {}
    try:
        data = json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise ConfigInvalid(
            "the account's stored secrets cannot be decrypted (was SECRET_KEY or OMNIDESK_ENCRYPTION_KEY changed?); "
            "enter them again"
        ) from exc
    return {str(k): str(v) for k, v in data.items()}
