"""The Account Activity webhook's two checks, which tweepy has no helper for.

X signs with the app's consumer secret: `sha256=` + base64(HMAC-SHA256(secret, message)).
The CRC GET (on registration and about hourly) must echo `crc_token` signed that way as
`response_token`; every POST carries the raw body signed that way in
`x-twitter-webhooks-signature`. Base64, not hex (Meta's scheme is hex): easy to get wrong.
"""

from __future__ import annotations

import base64
import json

from omnidesk.plugins.contract import SignatureInvalid, WebhookResponse, hmac_sha256, signatures_match

SIGNATURE_HEADER = "x-twitter-webhooks-signature"


def sign(consumer_secret: str, message: bytes) -> str:
    return "sha256=" + base64.b64encode(hmac_sha256(consumer_secret, message)).decode("ascii")


def crc_response_token(consumer_secret: str, crc_token: str) -> str:
    return sign(consumer_secret, crc_token.encode("utf-8"))


def crc_response(consumer_secret: str, crc_token: str) -> WebhookResponse:
    body = json.dumps({"response_token": crc_response_token(consumer_secret, crc_token)}).encode()
    return WebhookResponse(status=200, body=body, content_type="application/json")


def verify_signature(consumer_secret: str, body: bytes, given: str) -> None:
    """Raise SignatureInvalid unless `given` is the body's signature (constant-time compare)."""
    if not given:
        raise SignatureInvalid(f"missing {SIGNATURE_HEADER} header")
    if not given.startswith("sha256="):
        raise SignatureInvalid(f"{SIGNATURE_HEADER} must be 'sha256=<base64>'")
    if not signatures_match(sign(consumer_secret, body), given.strip()):
        raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the body")
