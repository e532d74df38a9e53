"""Replies through facebook-sdk's real HTTP code to a fake Graph API on 127.0.0.1 (pytest-httpserver)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from datetime import datetime, timedelta, timezone

import facebook
import pytest

from channels_plugins.facebook.client import retry_after
from omnidesk.plugins.contract import (
    AuthorizationRequired,
    CapabilityError,
    IdentityKind,
    IdentityRef,
    OutboundReply,
    PermanentSendError,
    ReplyWindowClosed,
    RetryableSendError,
)

from .conftest import APP_SECRET, PAGE, TOKEN, channel, graph_error

POST = f"{PAGE}_901097836652708"
COMMENT = "901097836652708_903438993085259"
PSID = "987654321432"
PROOF = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()


def reply(**changes: object) -> OutboundReply:
    values: dict[str, object] = dict(
        idempotency_key="out-1", to=IdentityRef(IdentityKind.FACEBOOK, PSID, PAGE), text="We are on it.",
        visibility="private", ticket_ref=7, thread_key=f"psid:{PSID}", in_reply_to="m_customer-1",
        customer_last_message_at=datetime.now(timezone.utc) - timedelta(hours=1),
    )
    values.update(changes)
    return OutboundReply(**values)  # type: ignore[arg-type]


def comment_reply(**changes: object) -> OutboundReply:
    base = dict(to=IdentityRef(IdentityKind.FACEBOOK, "5550001112223", PAGE), visibility="public",
                thread_key=f"post:{POST}", in_reply_to=COMMENT)
    return reply(**{**base, **changes})


def form(graph, n: int = -1) -> dict[str, str]:
    request, _ = graph.log[n]
    return request.form.to_dict()


def test_the_sdk_rejects_current_versions_so_the_client_sets_it_afterwards():
    with pytest.raises(facebook.GraphAPIError, match="Valid API versions"):
        facebook.GraphAPI(version="3.2")
    assert channel(graph_version="v24.0")._graph().graph.version == "v24.0"


def test_a_public_reply_comments_on_the_comment(graph):
    graph.expect_request(f"/v23.0/{COMMENT}/comments", method="POST").respond_with_json({"id": "901097836652708_999"})
    delivery = channel(graph.url_for("/")).send(comment_reply())
    assert delivery.external_id == "901097836652708_999"
    assert form(graph) == {"message": "We are on it.", "access_token": TOKEN, "appsecret_proof": PROOF}


def test_a_private_reply_to_a_comment_goes_to_messenger_by_comment_id(graph):
    graph.expect_request("/v23.0/me/messages", method="POST").respond_with_json(
        {"recipient_id": PSID, "message_id": "m_private-1"}
    )
    delivery = channel(graph.url_for("/")).send(comment_reply(visibility="private"))
    assert (delivery.external_id, delivery.thread_key) == ("m_private-1", f"psid:{PSID}")
    sent = form(graph)
    assert json.loads(sent["recipient"]) == {"comment_id": COMMENT}
    assert json.loads(sent["message"]) == {"text": "We are on it."}
    assert sent["appsecret_proof"] == PROOF and "tag" not in sent


def test_a_private_reply_to_a_visitor_post_goes_by_post_id(graph):
    graph.expect_request("/v23.0/me/messages", method="POST").respond_with_json({"recipient_id": PSID, "message_id": "m_2"})
    channel(graph.url_for("/")).send(comment_reply(visibility="private", in_reply_to=POST))
    assert json.loads(form(graph)["recipient"]) == {"post_id": POST}


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (timedelta(hours=1), {"messaging_type": "RESPONSE"}),
        (timedelta(hours=23, minutes=59), {"messaging_type": "RESPONSE"}),
        (timedelta(hours=25), {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}),
        (timedelta(days=6, hours=23), {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}),
    ],
)
def test_messenger_replies_use_response_for_24_hours_then_the_human_agent_tag(graph, age, expected):
    graph.expect_request("/v23.0/me/messages", method="POST").respond_with_json({"recipient_id": PSID, "message_id": "m_3"})
    last = datetime.now(timezone.utc) - age
    delivery = channel(graph.url_for("/")).send(reply(customer_last_message_at=last))
    assert delivery.external_id == "m_3"
    sent = form(graph)
    assert json.loads(sent["recipient"]) == {"id": PSID}
    assert {k: sent[k] for k in ("messaging_type", "tag") if k in sent} == expected


def test_past_seven_days_nothing_is_sent(graph):
    late = reply(customer_last_message_at=datetime.now(timezone.utc) - timedelta(days=7, hours=1))
    with pytest.raises(ReplyWindowClosed, match="7 days"):
        channel(graph.url_for("/")).check_reply(late)
    with pytest.raises(ReplyWindowClosed):
        channel(graph.url_for("/")).send(late)
    assert graph.log == []


def test_the_graph_version_is_configurable_and_in_every_path(graph):
    graph.expect_request(f"/v24.0/{COMMENT}/comments", method="POST").respond_with_json({"id": "c-2"})
    assert channel(graph.url_for("/"), graph_version="v24.0").send(comment_reply()).external_id == "c-2"


def test_every_call_carries_the_appsecret_proof(graph):
    graph.expect_request(f"/v23.0/{COMMENT}/comments").respond_with_json({"id": "c-1"})
    graph.expect_request("/v23.0/me/messages").respond_with_json({"recipient_id": PSID, "message_id": "m_1"})
    plugin = channel(graph.url_for("/"))
    plugin.send(comment_reply())
    plugin.send(comment_reply(visibility="private"))
    plugin.send(reply())
    assert len(graph.log) == 3
    for request, _ in graph.log:
        assert request.form["appsecret_proof"] == PROOF and request.form["access_token"] == TOKEN
        assert request.path.startswith("/v23.0/")


def test_an_expired_token_needs_reauthorization(graph):
    graph.expect_request("/v23.0/me/messages").respond_with_data(
        graph_error(190, "Error validating access token: Session has expired on Tuesday.", subcode=463),
        status=400, content_type="application/json",
    )
    with pytest.raises(AuthorizationRequired) as info:
        channel(graph.url_for("/")).send(reply())
    assert info.value.code == "needs_reauthorization" and info.value.retryable
    assert "190/463" in str(info.value) and "Session has expired" in str(info.value)


@pytest.mark.parametrize(
    ("code", "headers", "wait"),
    [
        (4, {"X-App-Usage": '{"call_count":100,"total_cputime":12,"total_time":40}'}, None),
        (32, {"X-Business-Use-Case-Usage": json.dumps({PAGE: [{"type": "pages", "call_count": 100,
                                                               "estimated_time_to_regain_access": 5}]})}, 300.0),
        (613, {"Retry-After": "42"}, 42.0),
    ],
)
def test_rate_limits_are_retried_after_the_time_meta_gives(graph, code, headers, wait):
    graph.expect_request("/v23.0/me/messages").respond_with_data(
        graph_error(code, f"(#{code}) Application request limit reached", kind="OAuthException"),
        status=400 if code != 613 else 429, content_type="application/json", headers=headers,
    )
    with pytest.raises(RetryableSendError) as info:
        channel(graph.url_for("/")).send(reply())
    assert not isinstance(info.value, AuthorizationRequired)
    assert info.value.retry_after == wait and f"Graph error {code}" in str(info.value)


@pytest.mark.parametrize(
    ("code", "subcode", "message"),
    [
        (10, 2018278, "(#10) This message is sent outside of allowed window."),
        (551, 1545041, "This person isn't available right now."),
        (100, 2534022, "This message is sent outside of allowed window."),
    ],
)
def test_meta_refusing_outside_the_window_is_reply_window_closed(graph, code, subcode, message):
    graph.expect_request("/v23.0/me/messages").respond_with_data(
        graph_error(code, message, subcode=subcode), status=400, content_type="application/json"
    )
    with pytest.raises(ReplyWindowClosed) as info:
        channel(graph.url_for("/")).send(reply())
    assert message in str(info.value) and not info.value.retryable


def test_server_errors_are_retryable(graph):
    graph.expect_ordered_request("/v23.0/me/messages").respond_with_data("<html>Bad gateway</html>", status=502,
                                                                          content_type="text/html")
    graph.expect_ordered_request("/v23.0/me/messages").respond_with_data(
        graph_error(2, "An unexpected error has occurred. Please retry your request later.", transient=True),
        status=500, content_type="application/json",
    )
    plugin = channel(graph.url_for("/"))
    found = []
    for _ in range(2):
        with pytest.raises(RetryableSendError) as info:
            plugin.send(reply())
        assert not isinstance(info.value, AuthorizationRequired)
        found.append(str(info.value))
    assert "HTTP 502" in found[0]
    assert "Graph error 2" in found[1] and "retry your request later" in found[1]


def test_other_refusals_are_permanent_with_metas_message(graph):
    graph.expect_request(f"/v23.0/{COMMENT}/comments").respond_with_data(
        graph_error(100, "(#100) Unsupported post request. Object with ID does not exist", kind="GraphMethodException"),
        status=400, content_type="application/json",
    )
    with pytest.raises(PermanentSendError) as info:
        channel(graph.url_for("/")).send(comment_reply())
    assert not isinstance(info.value, ReplyWindowClosed)
    assert "Object with ID does not exist" in str(info.value) and "Graph error 100" in str(info.value)


def test_an_unreachable_graph_is_retryable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RetryableSendError, match="unreachable"):
        channel(f"http://127.0.0.1:{port}").send(reply())


def test_refusals_before_any_network(block_network):
    plugin = channel()
    with pytest.raises(CapabilityError, match="private"):
        plugin.send(reply(visibility="public"))
    with pytest.raises(PermanentSendError, match="serves Page"):
        plugin.send(reply(to=IdentityRef(IdentityKind.FACEBOOK, PSID, "999")))
    with pytest.raises(CapabilityError, match="must answer a comment or post"):
        plugin.send(reply(visibility="public", thread_key="", in_reply_to=""))
    assert block_network == []


def test_a_dry_run_account_never_calls_meta(block_network):
    delivery = channel(dry_run=True).send(reply())
    assert delivery.external_id == "dry-run-out-1" and block_network == []


def test_retry_after_reads_metas_usage_headers():
    usage = {"1": [{"estimated_time_to_regain_access": 0}], "2": [{"estimated_time_to_regain_access": 3}]}
    assert retry_after({"x-business-use-case-usage": json.dumps(usage)}) == 180.0
    assert retry_after({"x-app-usage": "not json"}) is None
    assert retry_after({}) is None


@pytest.mark.parametrize(
    ("settings", "why"),
    [({"page_id": "acme"}, "page_id"), ({"graph_version": "23.0"}, "graph_version"),
     ({"graph_url": "graph.facebook.com"}, "graph_url")],
)
def test_config_is_validated(settings, why):
    from channels_plugins.facebook.adapter import FacebookConfig
    from omnidesk.plugins.config import load_config
    from omnidesk.plugins.contract import ConfigInvalid

    from .conftest import SECRETS

    with pytest.raises(ConfigInvalid, match=why):
        load_config(FacebookConfig, {"page_id": PAGE, **settings}, SECRETS)


def test_an_account_without_a_page_id_parses_but_cannot_send(block_network):
    with pytest.raises(PermanentSendError, match="no page_id"):
        channel(page_id="").send(reply())
