"""Bad input gets a clear answer and loses nothing that was valid."""

import hashlib

import pytest

from omnidesk.inbox.models import InboundEvent
from omnidesk.inbox.services import inbound_events_apply
from omnidesk.tickets.models import Message
from tests.conftest import api_body

pytestmark = pytest.mark.django_db


def test_bad_signature_is_401_and_nothing_is_stored(api_account, post_hook):
    resp = post_hook("acme-api", api_body(), secret="wrong")
    assert resp.status_code == 401
    assert resp.json()["error"] == "signature_invalid"
    assert "does not match" in resp.json()["detail"]
    assert post_hook("acme-api", api_body(), signature="").status_code == 401
    assert InboundEvent.objects.count() == 0


def test_unknown_and_disabled_accounts_are_404(api_account, post_hook):
    assert post_hook("nope", api_body()).status_code == 404
    api_account.enabled = False
    api_account.save()
    resp = post_hook("acme-api", api_body())
    assert resp.status_code == 404 and resp.json()["error"] == "unknown_account"
    assert InboundEvent.objects.count() == 0


def test_oversized_body_is_413(api_account, post_hook, settings):
    settings.OMNIDESK = {**settings.OMNIDESK, "WEBHOOK_MAX_BYTES": 200}
    resp = post_hook("acme-api", api_body(text="x" * 500))
    assert resp.status_code == 413
    assert "200-byte limit" in resp.json()["detail"]
    assert InboundEvent.objects.count() == 0


def test_get_without_handshake_is_405_not_stored(api_account, client):
    from channels_plugins.api.client import sign

    resp = client.get("/hooks/acme-api/", HTTP_X_OMNIDESK_SIGNATURE=sign("s3cret", b""))
    assert resp.status_code == 405
    assert InboundEvent.objects.count() == 0


@pytest.mark.parametrize(
    "body, reason",
    [
        (b'{"id": "m-1", "author": ', "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (api_body(author=None), "author: required object"),
        (api_body(sent_at="2026-11-02T09:15:00"), "has no time zone"),
        (api_body(type="reaction"), "event type 'reaction'"),
    ],
)
def test_signed_but_unparseable_is_stored_failed_with_reason(api_account, post_hook, body, reason):
    resp = post_hook("acme-api", body)
    assert resp.status_code == 200  # the sender must stop retrying; we keep the body
    inbound_events_apply()
    event = InboundEvent.objects.get()
    assert event.status == "failed"
    assert reason in event.error
    assert bytes(event.body) == body


def test_a_poison_event_never_blocks_the_ones_behind_it(api_account, post_hook):
    post_hook("acme-api", b"{broken")
    post_hook("acme-api", api_body(id="good-1"))
    post_hook("acme-api", api_body(id="good-2", thread="t-2"))
    report = inbound_events_apply()
    assert (report.applied, report.failed) == (2, 1)
    assert set(Message.objects.values_list("external_id", flat=True)) == {"good-1", "good-2"}


def test_failed_event_is_retryable(api_account, post_hook):
    from omnidesk.inbox.services import inbound_event_retry

    post_hook("acme-api", api_body(sent_at="yesterday"))
    inbound_events_apply()
    event = InboundEvent.objects.get()
    assert event.status == "failed"
    inbound_event_retry(event=event)
    event.refresh_from_db()
    assert (event.status, event.error) == ("pending", "")


def test_credential_headers_are_not_stored(api_account, post_hook):
    post_hook("acme-api", api_body(), HTTP_X_API_KEY="hunter2", HTTP_AUTHORIZATION="Bearer abc", HTTP_X_REQUEST_ID="r-1")
    headers = {k.lower(): v for k, v in InboundEvent.objects.get().headers.items()}
    assert "x-request-id" in headers and "x-omnidesk-signature" in headers
    assert "x-api-key" not in headers and "authorization" not in headers


def test_an_account_disabled_after_a_webhook_answers_404_at_once(api_account, post_hook):
    from omnidesk.plugins.models import ChannelAccount

    assert post_hook("acme-api", api_body(id="m-1")).status_code == 200  # the view now holds a copy of the account
    ChannelAccount.objects.filter(pk=api_account.pk).update(enabled=False)  # not even through save()
    resp = post_hook("acme-api", api_body(id="m-2"))
    assert resp.status_code == 404 and resp.json()["error"] == "unknown_account"
    assert InboundEvent.objects.count() == 1


def test_a_new_secret_applies_to_the_next_webhook(api_account, post_hook):
    from omnidesk.plugins.services import channel_account_save

    assert post_hook("acme-api", api_body(id="m-1")).status_code == 200
    channel_account_save(
        kind="api", slug="acme-api", name=api_account.name, config=api_account.config, secrets={"secret": "rotated"},
        default_group_id=api_account.default_group_id, account=api_account,
    )
    assert post_hook("acme-api", api_body(id="m-2")).status_code == 401  # the old secret, refused at once
    assert post_hook("acme-api", api_body(id="m-3"), secret="rotated").status_code == 200
    assert InboundEvent.objects.count() == 2


def test_a_redelivery_after_the_account_is_held_is_answered_as_a_duplicate(api_account, post_hook):
    first = post_hook("acme-api", api_body()).json()
    again = post_hook("acme-api", api_body()).json()
    assert again == {**first, "duplicate": True}
    assert InboundEvent.objects.count() == 1


def test_a_held_account_stores_with_one_statement_what_the_request_carried(api_account, post_hook):
    from tests.conftest import statements_sent

    assert post_hook("acme-api", api_body(id="m-1")).status_code == 200  # the view now holds a copy of the account
    body = api_body(id="m-2", text="the second one")
    with statements_sent() as sent:
        resp = post_hook("acme-api", body, HTTP_X_REQUEST_ID="r-2")
    assert resp.status_code == 200 and resp.json()["duplicate"] is False
    assert len(sent) == 1 and sent[0].startswith("INSERT INTO")
    event = InboundEvent.objects.get(pk=resp.json()["event"])
    assert bytes(event.body) == body and event.account_id == api_account.pk
    assert event.status == InboundEvent.Status.PENDING and event.attempts == 0 and event.error == ""
    assert event.summary == {} and event.received_at is not None
    assert {k.lower(): v for k, v in event.headers.items()}["x-request-id"] == "r-2"
    assert event.dedupe_key == "sha256:" + hashlib.sha256(body).hexdigest()
