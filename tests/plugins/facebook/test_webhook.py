"""verify(): Meta's hub.challenge handshake and X-Hub-Signature-256, in the plugin and through /hooks/."""

from __future__ import annotations

import dataclasses

import pytest

from channels_plugins.facebook.webhook import SIGNATURE_HEADER, sign
from omnidesk.inbox.models import InboundEvent
from omnidesk.plugins.config import Secret
from omnidesk.plugins.contract import Headers, SignatureInvalid, WebhookRequest, WebhookResponse

from .conftest import APP_SECRET, FIXTURES, PAGE, SECRETS, VERIFY_TOKEN, channel, fixture, signed

#: Meta's published algorithm over restfb's feed-comment-add-211.json, byte for byte
#: (../shared/corpus/facebook/meta_signature_test_vector.json; fixture page_post__our_comment_reply.json)
VECTOR_SECRET = "test_app_secret_not_real"
VECTOR_SIGNATURE = "sha256=5944808f9991fb31f64cb3a7b996dfc98c379641ba06f8d38f7537e428b88e6a"


def handshake(**query: str) -> WebhookRequest:
    return WebhookRequest("GET", "https://desk.example.com/hooks/acme-facebook/", Headers({}), query, b"")


def test_signature_known_answer():
    body = fixture("page_post__our_comment_reply")
    assert sign(VECTOR_SECRET, body) == VECTOR_SIGNATURE
    plugin = channel()
    vector_plugin = type(plugin)(dataclasses.replace(plugin.config, app_secret=Secret(VECTOR_SECRET)))
    request = WebhookRequest("POST", "", Headers({SIGNATURE_HEADER: VECTOR_SIGNATURE}), {}, body)
    assert vector_plugin.verify(request) is None


def test_the_hex_digest_is_accepted_in_upper_case_too():
    body = fixture("message__text")
    request = WebhookRequest("POST", "", Headers({"x-hub-signature-256": sign(APP_SECRET, body).upper().replace("SHA256=", "sha256=")}), {}, body)
    assert channel().verify(request) is None


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "missing X-Hub-Signature-256"),
        ("sha1=46784f6ef50da3bb2f60ce0b74d5fff6a131589d", "must be 'sha256=<hex>'"),
        ("sha256=" + "0" * 64, "does not match"),
        ("sha256=", "does not match"),
    ],
)
def test_bad_signatures_are_refused(header, why):
    body = fixture("message__text")
    headers = {SIGNATURE_HEADER: header} if header is not None else {}
    with pytest.raises(SignatureInvalid, match=why):
        channel().verify(WebhookRequest("POST", "", Headers(headers), {}, body))


def test_a_signature_over_other_bytes_is_refused():
    body = fixture("message__text")
    request = signed(body)
    reserialized = body.replace(b"  ", b" ")  # same JSON, other bytes: Meta signs bytes, not JSON
    with pytest.raises(SignatureInvalid):
        channel().verify(dataclasses.replace(request, body=reserialized))


@pytest.mark.parametrize("path", sorted(p.name for p in FIXTURES.glob("*.json") if not p.name.endswith(".expected.json")))
def test_every_fixture_signed_with_the_app_secret_is_accepted(path):
    body = (FIXTURES / path).read_bytes()
    assert channel().verify(signed(body)) is None
    with pytest.raises(SignatureInvalid):
        channel().verify(signed(body, secret="another-app"))


def test_the_handshake_echoes_the_challenge():
    answer = channel().verify(handshake(**{"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}))
    assert answer == WebhookResponse(200, b"1158201444", "text/plain")


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ({"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"}, "verify_token does not match"),
        ({"hub.mode": "subscribe", "hub.challenge": "1"}, "verify_token does not match"),
        ({"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"}, "hub.mode=subscribe"),
        ({}, "hub.mode=subscribe"),
        ({"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN}, "hub.challenge is missing"),
        ({"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "9" * 600}, "too long"),
    ],
)
def test_a_wrong_handshake_is_refused(query, why):
    with pytest.raises(SignatureInvalid, match=why):
        channel().verify(handshake(**query))


# --- through the Django view ---------------------------------------------------------------


@pytest.fixture
def account(db):  # type: ignore[no-untyped-def]
    from omnidesk.plugins.services import channel_account_save

    return channel_account_save(kind="facebook", slug="acme-facebook", name="Acme Page", config={"page_id": PAGE}, secrets=SECRETS)


def test_the_view_answers_the_handshake_and_stores_nothing(client, account):
    url = f"/hooks/acme-facebook/?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=987654"
    response = client.get(url)
    assert response.status_code == 200 and response.content == b"987654"
    assert response["Content-Type"].startswith("text/plain")
    # Meta expects 403 for a wrong token; the core answers every SignatureInvalid with 401.
    assert client.get(url.replace(VERIFY_TOKEN, "wrong")).status_code == 401
    assert InboundEvent.objects.count() == 0


def test_the_view_stores_a_signed_post_and_refuses_a_bad_one(client, account):
    body = fixture("comment__batch_pages_and_messenger")
    post = lambda sig: client.generic(  # noqa: E731
        "POST", "/hooks/acme-facebook/", body, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=sig
    )
    assert post("sha256=" + "0" * 64).status_code == 401
    assert InboundEvent.objects.count() == 0
    response = post(sign(APP_SECRET, body))
    assert response.status_code == 200 and response.json()["status"] == "accepted"
    event = InboundEvent.objects.get()
    assert bytes(event.body) == body and event.headers.get("X-Hub-Signature-256", "").startswith("sha256=")
