"""Account Activity CRC and signatures: X's known answers, and the plugin's verify()."""

from __future__ import annotations

import json
import os

import pytest

from channels_plugins.twitter.webhook import crc_response, crc_response_token, sign, verify_signature
from omnidesk.plugins.contract import Headers, SignatureInvalid, WebhookRequest

# ../shared/corpus/twitter/x_crc_test_vector.json (secret and token from X's published example)
VECTOR = {
    "consumer_secret": "z3ZX4v7mAAUGykl3EcmkqbartmuW8VFOOzCloLx9Q45P0hLrFu",
    "crc_token": "9b4507b3-9040-4669-9ca3-6b94edb50553",
    "response_token": "sha256=Cytd4Sq+NvEcV3MMrXxWJGJx5A+y/lXzzU2Maartkx8=",
}


def test_crc_known_answer() -> None:
    assert crc_response_token(VECTOR["consumer_secret"], VECTOR["crc_token"]) == VECTOR["response_token"]
    answer = crc_response(VECTOR["consumer_secret"], VECTOR["crc_token"])
    assert answer.status == 200 and answer.content_type == "application/json"
    assert json.loads(answer.body) == {"response_token": VECTOR["response_token"]}


def test_crc_known_answer_from_the_shared_corpus(shared_corpus: str) -> None:
    with open(os.path.join(shared_corpus, "twitter", "x_crc_test_vector.json"), encoding="utf-8") as fh:
        vector = json.load(fh)
    token = crc_response_token(vector["consumer_secret"], vector["crc_token"])
    assert token == vector["expected_response"]["response_token"]


def test_post_signature_is_base64_over_the_raw_body() -> None:
    body = b'{"for_user_id":"1","tweet_create_events":[]}'
    # the same scheme as the CRC: the CRC token is just the message
    assert sign(VECTOR["consumer_secret"], VECTOR["crc_token"].encode()) == VECTOR["response_token"]
    verify_signature("s", body, sign("s", body))
    for bad in ("", "sha1=abc", sign("other", body), sign("s", body + b" "), sign("s", body).replace("sha256=", "sha256=A")):
        with pytest.raises(SignatureInvalid):
            verify_signature("s", body, bad)


def test_plugin_verify_answers_crc_and_checks_posts(make_plugin) -> None:  # type: ignore[no-untyped-def]
    plugin = make_plugin()
    crc = WebhookRequest("GET", "https://desk/hooks/acme-x/?crc_token=abc", Headers({}), {"crc_token": "abc"}, b"")
    answer = plugin.verify(crc)
    assert answer is not None and json.loads(answer.body)["response_token"] == sign("x-consumer-secret", b"abc")
    with pytest.raises(SignatureInvalid):
        plugin.verify(WebhookRequest("GET", "https://desk/hooks/acme-x/", Headers({}), {}, b""))
    body = b'{"for_user_id": "1"}'
    good = WebhookRequest("POST", "", Headers({"X-Twitter-Webhooks-Signature": sign("x-consumer-secret", body)}), {}, body)
    assert plugin.verify(good) is None
    with pytest.raises(SignatureInvalid):
        plugin.verify(WebhookRequest("POST", "", Headers({}), {}, body))
