"""delivery_find() through facebook-sdk to a fake Graph API: was an interrupted reply already sent?"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from omnidesk.plugins.contract import CapabilityError, RetryableSendError

from .conftest import PAGE, TOKEN, by_page, by_person, channel, graph_error, serve_pages
from .test_send import COMMENT, PSID, comment_reply, reply

NOW = datetime.now(timezone.utc)
SINCE = NOW - timedelta(minutes=10)
CONVERSATION = "t_10161452637141782"


def test_a_comment_reply_is_found_among_the_replies_to_the_comment(graph):
    serve_pages(graph, f"/v23.0/{COMMENT}/comments", [
        by_person("903438993085259_7", "We are on it.", NOW),  # the same words, but not the Page's
        by_page("903438993085259_8", "We are on it.", NOW - timedelta(minutes=1)),
    ])
    delivery = channel(graph.url_for("/")).delivery_find(comment_reply(), since=SINCE)
    assert delivery is not None and delivery.external_id == "903438993085259_8"
    assert delivery.sent_at == (NOW - timedelta(minutes=1)).replace(microsecond=0)
    (request, _), = graph.log
    assert request.method == "GET" and request.args["access_token"] == TOKEN and request.args["appsecret_proof"]
    assert request.args["order"] == "reverse_chronological" and "created_time" in request.args["fields"]


def test_pages_are_read_back_to_since_and_no_further(graph):
    older = by_page("903438993085259_1", "We are on it.", SINCE - timedelta(hours=1))
    serve_pages(graph, f"/v23.0/{COMMENT}/comments", [by_person("903438993085259_9", "hello?", NOW)], [older], [older])
    assert channel(graph.url_for("/")).delivery_find(comment_reply(), since=SINCE) is None
    assert [r.args.get("after") for r, _ in graph.log] == [None, "cursor-1"]  # stopped at the first older item


def test_a_messenger_reply_is_found_in_the_conversation_with_that_person(graph):
    graph.expect_request(f"/v23.0/{PAGE}/conversations", method="GET").respond_with_json(
        {"data": [{"id": CONVERSATION}]}
    )
    serve_pages(graph, f"/v23.0/{CONVERSATION}/messages", [
        by_page("m_other", "Anything else?", NOW), by_page("m_ours", "We are on it.", NOW - timedelta(minutes=2)),
    ])
    delivery = channel(graph.url_for("/")).delivery_find(reply(), since=SINCE)
    assert delivery is not None and delivery.external_id == "m_ours" and delivery.thread_key == f"psid:{PSID}"
    conversations = graph.log[0][0]
    assert (conversations.args["user_id"], conversations.args["platform"]) == (PSID, "messenger")


def test_a_reply_sent_just_before_the_window_closed_is_still_found(graph):
    graph.expect_request(f"/v23.0/{PAGE}/conversations", method="GET").respond_with_json(
        {"data": [{"id": CONVERSATION}]}
    )
    serve_pages(graph, f"/v23.0/{CONVERSATION}/messages", [by_page("m_ours", "We are on it.", NOW)])
    late = reply(customer_last_message_at=NOW - timedelta(days=7, minutes=1))
    assert channel(graph.url_for("/")).delivery_find(late, since=SINCE).external_id == "m_ours"


def test_no_conversation_means_nothing_reached_that_person(graph):
    graph.expect_request(f"/v23.0/{PAGE}/conversations", method="GET").respond_with_json({"data": []})
    assert channel(graph.url_for("/")).delivery_find(reply(), since=SINCE) is None


def test_private_replies_to_comments_and_dry_runs_cannot_be_looked_up(graph):
    with pytest.raises(CapabilityError, match="private reply"):
        channel(graph.url_for("/")).delivery_find(comment_reply(visibility="private"), since=SINCE)
    with pytest.raises(CapabilityError, match="dry-run"):
        channel(graph.url_for("/"), dry_run=True).delivery_find(reply(), since=SINCE)
    assert graph.log == []


@pytest.mark.parametrize(
    ("status", "body"),
    [(400, graph_error(4, "Application request limit reached")),
     (500, graph_error(2, "An unexpected error has occurred.", transient=True))],
    ids=["rate-limited", "5xx"],
)
@pytest.mark.parametrize("which", ["comment", "messenger"])
def test_a_failing_lookup_is_retryable(graph, status, body, which):
    path = f"/v23.0/{COMMENT}/comments" if which == "comment" else f"/v23.0/{PAGE}/conversations"
    graph.expect_request(path, method="GET").respond_with_data(body, status=status, content_type="application/json")
    with pytest.raises(RetryableSendError):
        channel(graph.url_for("/")).delivery_find(comment_reply() if which == "comment" else reply(), since=SINCE)
    assert [r.method for r, _ in graph.log] == ["GET"]
