"""CTI events and Twilio callbacks: signatures (Twilio's known answers), parsing, and the real webhook view."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import parse_qsl, urlencode

import pytest

from channels_plugins.phone.adapter import SIGNATURE_HEADER, sign
from channels_plugins.phone.cti import TWILIO_HEADER, twilio_signature, twilio_valid, url_variants
from omnidesk.inbox.models import InboundEvent
from omnidesk.plugins.contract import Headers, Ignored, InboundMessage, RawEvent, SignatureInvalid, WebhookRequest

from .helpers import SECRET, TWILIO_TOKEN, make_plugin

# twilio/twilio-python tests/unit/test_request_validator.py (the values the corpus copies)
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234", "From": "+14158675309",
                 "To": "+18005551212"}


def test_twilio_known_answers() -> None:
    assert twilio_signature("12345", VECTOR_URL, VECTOR_PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    body = urlencode(VECTOR_PARAMS).encode()
    assert twilio_valid("12345", VECTOR_URL, body, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert twilio_valid("12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", body, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not twilio_valid("12346", VECTOR_URL, body, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    repeated = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
    assert twilio_signature("12345", VECTOR_URL, repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def test_twilio_json_body_is_checked_by_its_hash() -> None:
    body = b'{"property": "value", "boolean": true}'
    digest = hashlib.sha256(body).hexdigest()
    assert digest == "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    url = f"{VECTOR_URL}&bodySHA256={digest}"
    signature = twilio_signature("12345", url)
    assert twilio_valid("12345", url, body, signature)
    assert not twilio_valid("12345", url, body.replace(b"true", b"false"), signature)


def test_url_variants_add_and_drop_the_default_port() -> None:
    assert url_variants("https://a.example/x?y=1") == ["https://a.example/x?y=1", "https://a.example:443/x?y=1"]
    assert url_variants("http://a.example:80/x") == ["http://a.example:80/x", "http://a.example/x"]


def _request(body: bytes, headers: dict[str, str], url: str = "https://desk.example.com/hooks/acme-phone/") -> WebhookRequest:
    return WebhookRequest(method="POST", url=url, headers=Headers(headers), query={}, body=body)


def test_verify_cti_and_twilio_and_refusals() -> None:
    plugin = make_plugin()
    body = b'{"event": "newCall", "call_id": "1"}'
    assert plugin.verify(_request(body, {SIGNATURE_HEADER: sign(SECRET, body)})) is None
    with pytest.raises(SignatureInvalid, match="missing"):
        plugin.verify(_request(body, {}))
    with pytest.raises(SignatureInvalid, match="does not match"):
        plugin.verify(_request(body, {SIGNATURE_HEADER: sign("other", body)}))
    form = b"CallSid=CA1&CallStatus=completed&From=%2B447700900123"
    url = "https://desk.example.com/hooks/acme-phone/"
    good = twilio_signature(TWILIO_TOKEN, url, parse_qsl(form.decode()))
    assert plugin.verify(_request(form, {TWILIO_HEADER: good})) is None
    with pytest.raises(SignatureInvalid):
        plugin.verify(_request(form, {TWILIO_HEADER: good}, url="https://desk.example.com/hooks/other/"))
    no_twilio = make_plugin(secret=SECRET)
    with pytest.raises(SignatureInvalid, match="no twilio_auth_token"):
        no_twilio.verify(_request(form, {TWILIO_HEADER: good}))
    behind_proxy = make_plugin({"twilio_url": url})
    assert behind_proxy.verify(_request(form, {TWILIO_HEADER: good}, url="http://10.0.0.5:8000/hooks/acme-phone/")) is None


def test_twilio_dial_status_decides_whether_an_agent_answered() -> None:
    body = urlencode({"CallSid": "CA9", "CallStatus": "completed", "CallDuration": "60", "From": "+447700900123",
                      "To": "+441614960000", "Direction": "inbound", "DialCallStatus": "no-answer"}).encode()
    (item,) = make_plugin().parse(RawEvent(body=body, headers={"Content-Type": "application/x-www-form-urlencoded"}))
    assert isinstance(item, InboundMessage) and item.event_type == "missed_call" and item.sent_at is None
    outbound = body.replace(b"Direction=inbound", b"Direction=outbound-api")
    (ignored,) = make_plugin().parse(RawEvent(body=outbound))
    assert ignored == Ignored("outbound", "call CA9 from +447700900123 to +441614960000 made by an agent")


def test_cti_hangup_without_answered_flag_uses_the_duration() -> None:
    body = json.dumps({"event": "hangup", "call_id": 77, "from": "07700900123", "to": "200",
                       "at": "2024-03-05T10:00:30+01:00", "duration_s": 20}).encode()
    (item,) = make_plugin().parse(RawEvent(body=body))
    assert item.external_id == "77" and item.event_type == "call" and item.call.duration_s == 20
    assert item.sent_at.isoformat() == "2024-03-05T09:00:10+00:00"


@pytest.mark.django_db
def test_twilio_callbacks_through_the_real_view(client, phone_account) -> None:  # type: ignore[no-untyped-def]
    url = "http://testserver/hooks/acme-phone/"  # what request.build_absolute_uri() gives in tests
    params = {"CallSid": "CA5", "CallStatus": "no-answer", "From": "+447700900123", "To": "+441614960000",
              "Direction": "inbound", "Timestamp": "Tue, 05 Mar 2024 15:00:30 +0000"}
    body = urlencode(params)
    signature = twilio_signature(TWILIO_TOKEN, url, params)
    answer = client.post("/hooks/acme-phone/", body, content_type="application/x-www-form-urlencoded",
                         HTTP_X_TWILIO_SIGNATURE=signature)
    assert answer.status_code == 200, answer.content
    event = InboundEvent.objects.get(pk=answer.json()["event"])
    assert event.headers.get("X-Twilio-Signature") == signature
    refused = client.post("/hooks/acme-phone/", body.replace("no-answer", "completed"),
                          content_type="application/x-www-form-urlencoded", HTTP_X_TWILIO_SIGNATURE=signature)
    assert refused.status_code == 401 and refused.json()["error"] == "signature_invalid"
