"""Signed HTTP POSTs to the account's callback URL (requests)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import requests

from omnidesk.plugins.contract import (
    AuthorizationRequired,
    PermanentSendError,
    RetryableSendError,
    hmac_sha256,
)

SIGNATURE_HEADER = "X-Omnidesk-Signature"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac_sha256(secret, body).hex()


@dataclass
class CallbackClient:
    url: str
    secret: str
    timeout_s: float
    session: requests.Session

    def post(self, payload: dict, *, idempotency_key: str) -> dict:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.secret, body),
            "Idempotency-Key": idempotency_key,
            "User-Agent": "omnidesk-api-channel/1",
        }
        try:
            resp = self.session.post(self.url, data=body, headers=headers, timeout=self.timeout_s)
        except requests.Timeout as exc:
            raise RetryableSendError(f"callback {self.url} timed out after {self.timeout_s:g} s") from exc
        except requests.RequestException as exc:
            raise RetryableSendError(f"callback {self.url} unreachable: {exc.__class__.__name__}") from exc
        snippet = resp.text[:200].strip()
        if resp.status_code in (401, 403):
            raise AuthorizationRequired(f"callback refused our credentials ({resp.status_code}): {snippet}")
        if resp.status_code == 429 or resp.status_code >= 500:
            retry_after = _retry_after(resp.headers.get("Retry-After"))
            raise RetryableSendError(f"callback answered {resp.status_code}: {snippet}", retry_after=retry_after)
        if resp.status_code >= 400:
            raise PermanentSendError(f"callback rejected the reply ({resp.status_code}): {snippet}")
        try:
            data = resp.json()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
