"""Hostile webhooks, on every channel that receives them: refused with the right status and a JSON
error, and NOTHING stored.

Forged, unsigned, truncated in transit, oversized, of the wrong Content-Type, with a Content-Length
that is not a number; a replay of a genuine delivery stores nothing new. (No channel's signature
covers a timestamp header — X, Meta, Twilio and the CTI/API schemes sign the body (and URL) only —
so a replay is refused by idempotency: the same body is the same stored event, and events are
never pruned.) Plus random bytes and headers through each webhook: never a 5xx, never stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels_plugins.api import client as api_client
from channels_plugins.facebook import webhook as meta_webhook
from channels_plugins.phone import adapter as phone_adapter
from channels_plugins.phone import cti
from channels_plugins.phone.cti import twilio_signature
from channels_plugins.twitter import webhook as x_webhook
from omnidesk.inbox.models import InboundEvent
from omnidesk.plugins.contract import Headers, WebhookRequest
from omnidesk.plugins.services import channel_account_save
from tests.plugins.api import test_conformance as api_kit
from tests.plugins.facebook import test_conformance as facebook_kit
from tests.plugins.phone import test_conformance as phone_kit
from tests.plugins.twitter import test_conformance as twitter_kit

from .conftest import fuzz_settings
from .strategies import FIXTURES

pytestmark = pytest.mark.django_db


def _twilio(secret: str, request: WebhookRequest) -> dict[str, str]:
    params = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
    return {cti.TWILIO_HEADER: twilio_signature(secret, request.url, params)}


@dataclass(frozen=True)
class Channel:
    kit: Any
    fixture: str
    #: which of the account's secrets signs, and how a sender signs with it
    secret: str
    signer: Callable[[str, WebhookRequest], dict[str, str]]
    content_type: str = "application/json"

    @property
    def slug(self) -> str:
        return f"hook-{self.kit.plugin_class.kind}"

    @property
    def url(self) -> str:
        return f"http://testserver/hooks/{self.slug}/"

    def body(self) -> bytes:
        return (FIXTURES / self.kit.plugin_class.kind / "fixtures" / self.fixture).read_bytes()

    def signed(self, body: bytes, *, secret: str | None = None) -> WebhookRequest:
        request = WebhookRequest("POST", self.url, Headers({"Content-Type": self.content_type}), {}, body)
        key = self.kit.secrets[self.secret] if secret is None else secret
        return dataclasses.replace(request, headers=Headers({**dict(request.headers.items()), **self.signer(key, request)}))


def _header(name: str, sign: Callable[[str, bytes], str]) -> Callable[[str, WebhookRequest], dict[str, str]]:
    return lambda secret, request: {name: sign(secret, request.body)}


CHANNELS = {
    "api": Channel(api_kit.TestApiConformance, "message__new_thread.json", "secret",
                   _header(api_client.SIGNATURE_HEADER, api_client.sign)),
    "twitter": Channel(twitter_kit.TestTwitterConformance, "mention__account_activity.json", "consumer_secret",
                       _header(x_webhook.SIGNATURE_HEADER, x_webhook.sign)),
    "facebook": Channel(facebook_kit.TestFacebookConformance, "comment__top_level.json", "app_secret",
                        _header(meta_webhook.SIGNATURE_HEADER, meta_webhook.sign)),
    "phone-cti": Channel(phone_kit.TestPhoneConformance, "call__cti_hangup_answered.json", "secret",
                         _header(phone_adapter.SIGNATURE_HEADER, phone_adapter.sign)),
    "phone-twilio": Channel(phone_kit.TestPhoneConformance, "status_callback__twilio_completed.form", "twilio_auth_token",
                            _twilio, "application/x-www-form-urlencoded"),
}


@pytest.fixture
def accounts(db) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from omnidesk.routing.models import Group

    group = Group.objects.get_or_create(name="Support")[0]
    made = {}
    for channel in {c.slug: c for c in CHANNELS.values()}.values():
        data, secrets = channel.kit().settings_and_secrets()
        made[channel.slug] = channel_account_save(
            kind=channel.kit.plugin_class.kind, slug=channel.slug, name=channel.slug, config=data, secrets=secrets,
            default_group_id=group.pk,
        )
    return made


def post(client: Any, channel: Channel, request: WebhookRequest, **extra: Any) -> Any:
    meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in request.headers.items() if k.lower() != "content-type"}
    meta.update(extra)
    content_type = request.headers.get("Content-Type", "")
    return client.generic("POST", f"/hooks/{channel.slug}/", request.body, content_type=content_type, **meta)


def refused(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert body["error"] == code and isinstance(body["detail"], str) and body["detail"].strip(), body
    assert InboundEvent.objects.count() == 0, "a refused webhook was stored"
    return body  # type: ignore[no-any-return]


CASES = sorted(CHANNELS)


@pytest.mark.parametrize("name", CASES)
def test_a_genuine_delivery_is_stored_once_and_its_replay_adds_nothing(name, accounts, client):  # type: ignore[no-untyped-def]
    channel = CHANNELS[name]
    request = channel.signed(channel.body())
    first = post(client, channel, request)
    assert first.status_code == 200, first.content
    assert first.json()["duplicate"] is False and InboundEvent.objects.count() == 1
    again = post(client, channel, request)
    assert again.status_code == 200 and again.json() == {**first.json(), "duplicate": True}
    assert InboundEvent.objects.count() == 1, "a replayed delivery was stored twice"


@pytest.mark.parametrize("name", CASES)
def test_forged_signature_is_401(name, accounts, client):  # type: ignore[no-untyped-def]
    channel = CHANNELS[name]
    forged = channel.signed(channel.body(), secret="forged-" + channel.kit.secrets[channel.secret])
    assert forged.headers != channel.signed(channel.body()).headers, "the forger must sign differently"
    refused(post(client, channel, forged), 401, "signature_invalid")


@pytest.mark.parametrize("name", CASES)
def test_unsigned_is_401(name, accounts, client):  # type: ignore[no-untyped-def]
    channel = CHANNELS[name]
    bare = WebhookRequest("POST", channel.url, Headers({"Content-Type": channel.content_type}), {}, channel.body())
    refused(post(client, channel, bare), 401, "signature_invalid")


@pytest.mark.parametrize("name", CASES)
def test_body_truncated_in_transit_is_401(name, accounts, client):  # type: ignore[no-untyped-def]
    channel = CHANNELS[name]
    request = channel.signed(channel.body())
    cut = dataclasses.replace(request, body=request.body[: len(request.body) // 2])
    refused(post(client, channel, cut), 401, "signature_invalid")


@pytest.mark.parametrize("name", CASES)
def test_oversized_is_413(name, accounts, client, settings):  # type: ignore[no-untyped-def]
    channel = CHANNELS[name]
    request = channel.signed(channel.body())
    settings.OMNIDESK = {**settings.OMNIDESK, "WEBHOOK_MAX_BYTES": len(request.body) - 1}
    body = refused(post(client, channel, request), 413, "payload_too_large")
    assert f"{len(request.body) - 1}-byte limit" in body["detail"]


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data; boundary=x", "application/xml"])
def test_wrong_content_type_is_415(name, content_type, accounts, client):  # type: ignore[no-untyped-def]
    channel = CHANNELS[name]
    request = channel.signed(channel.body())
    wrong = dataclasses.replace(request, headers=Headers({**dict(request.headers.items()), "Content-Type": content_type}))
    body = refused(post(client, channel, wrong), 415, "unsupported_media_type")
    assert content_type.split(";")[0] in body["detail"]


@pytest.mark.parametrize("name", ["api", "twitter", "facebook", "phone-cti"])
def test_json_with_a_charset_is_accepted(name, accounts, client):  # type: ignore[no-untyped-def]
    channel = CHANNELS[name]
    request = channel.signed(channel.body())
    typed = dataclasses.replace(
        request, headers=Headers({**dict(request.headers.items()), "Content-Type": "application/json; charset=utf-8"})
    )
    assert post(client, channel, typed).status_code == 200


@pytest.mark.parametrize("name", CASES)
def test_content_length_that_is_not_a_number_is_400(name, accounts, client):  # type: ignore[no-untyped-def]
    channel = CHANNELS[name]
    refused(post(client, channel, channel.signed(channel.body()), CONTENT_LENGTH="12abc"), 400, "bad_request")


HEADER_NAMES = st.sampled_from(
    ["X-Omnidesk-Signature", "X-Twitter-Webhooks-Signature", "X-Hub-Signature-256", "X-Twilio-Signature", "X-Other"]
)
HEADER_VALUES = st.one_of(st.sampled_from(["", "sha256=", "sha256=00", "sha256=" + "a" * 64, "sha1=x", "=" * 40]),
                          st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80))


@pytest.mark.parametrize("name", CASES)
def test_random_unsigned_input_is_never_a_5xx_and_never_stored(name, accounts, client):  # type: ignore[no-untyped-def]
    channel = CHANNELS[name]

    @given(
        body=st.one_of(st.binary(max_size=300), st.just(channel.body())),
        headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=3),
        content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded", "", "text/csv"]),
    )
    @fuzz_settings(25)
    def check(body: bytes, headers: dict[str, str], content_type: str) -> None:
        request = WebhookRequest("POST", channel.url, Headers({**headers, "Content-Type": content_type}), {}, body)
        response = post(client, channel, request)
        assert response.status_code in (401, 415), (response.status_code, response.content[:200])
        assert response.json()["error"] in ("signature_invalid", "unsupported_media_type")
        assert InboundEvent.objects.count() == 0

    check()
