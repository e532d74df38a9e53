"""Meta's webhook handshake (GET hub.challenge) and POST signatures (X-Hub-Signature-256)."""

from __future__ import annotations

from omnidesk.plugins.payloads import content_type_check
from omnidesk.plugins.contract import (
    SignatureInvalid,
    WebhookRequest,
    WebhookResponse,
    hmac_sha256,
    signatures_match,
)

SIGNATURE_HEADER = "X-Hub-Signature-256"
#: Meta's challenges are short numbers; anything far longer is not Meta
MAX_CHALLENGE = 512


def sign(app_secret: str, body: bytes) -> str:
    """`sha256=` + the HEX HMAC-SHA256 of the raw body (X uses base64: do not mix them up)."""
    return "sha256=" + hmac_sha256(app_secret, body).hex()


def verify(request: WebhookRequest, *, app_secret: str, verify_token: str) -> WebhookResponse | None:
    if request.method.upper() == "GET":
        return handshake(request, verify_token=verify_token)
    content_type_check(request.headers)
    given = request.headers.get(SIGNATURE_HEADER, "").strip()
    if not given:
        raise SignatureInvalid(f"missing {SIGNATURE_HEADER} header (is the app secret set in the Meta app?)")
    if not given.lower().startswith("sha256="):
        raise SignatureInvalid(f"{SIGNATURE_HEADER} must be 'sha256=<hex>'")
    if not signatures_match(sign(app_secret, request.body), "sha256=" + given[7:].lower()):
        raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the body: check the app secret of this account")
    return None


def handshake(request: WebhookRequest, *, verify_token: str) -> WebhookResponse:
    """Meta's subscription check: echo hub.challenge when hub.verify_token is ours."""
    mode = request.query.get("hub.mode", "")
    token = request.query.get("hub.verify_token", "")
    challenge = request.query.get("hub.challenge", "")
    if mode != "subscribe":
        raise SignatureInvalid("a GET must be Meta's subscription handshake (hub.mode=subscribe)")
    if not verify_token or not signatures_match(verify_token, token):
        raise SignatureInvalid("hub.verify_token does not match this account's verify token")
    if not challenge or len(challenge) > MAX_CHALLENGE:
        raise SignatureInvalid("hub.challenge is missing or too long")
    return WebhookResponse(200, challenge.encode(), "text/plain")
