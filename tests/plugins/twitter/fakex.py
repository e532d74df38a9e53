"""A local fake X API (pytest-httpserver) that answers with tweepy's REAL recorded responses.

tweepy runs its own HTTP code against it: the account's `api_base_url` points here and the
plugin's client mounts a transport adapter that sends https://api.twitter.com requests to it.
"""

from __future__ import annotations

import copy
import json
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

API = Path(__file__).parent / "fixtures" / "api"

#: the account the recorded DMs were sent from (@TweepyDev) and the person they went to
OWN_ID = "1072250532645998596"
CUSTOMER_ID = "750362064426721281"
#: people the enriched mentions are attributed to: (id, username, name, followers, verified)
PEOPLE = [
    (CUSTOMER_ID, "ada_rides", "Ada Rides", 1532, False),
    ("145336962", "grumpy_commuter", "Grumpy Commuter", 48210, True),
    ("2244994945", "XDevelopers", "Developers", 570000, True),
]


def recorded(name: str, method: str, path_part: str, index: int = 0) -> dict[str, Any]:
    """One recorded interaction of fixtures/api/<name>.json whose URI contains `path_part`."""
    found = [i for i in json.loads((API / f"{name}.json").read_text()) if i["method"] == method and path_part in i["uri"]]
    return found[index]


def rate_headers(interaction: dict[str, Any]) -> dict[str, str]:
    return {k: v[0] for k, v in interaction.get("rate_limit", {}).items()}


def enrich_mentions(body: dict[str, Any]) -> dict[str, Any]:
    """The recorded mentions page with the fields our request asks for (tweepy recorded none).

    Added, and nothing else changed: each tweet's author_id (cycling through PEOPLE),
    created_at (one minute apart, the recording's date), conversation_id (its own id; the
    second tweet is made a reply to the first, with referenced_tweets replied_to), and
    includes.users for the authors with public_metrics and verified.
    """
    body = copy.deepcopy(body)
    tweets = body["data"]
    for n, tweet in enumerate(tweets):
        person = PEOPLE[n % len(PEOPLE)]
        tweet["author_id"] = person[0]
        tweet["created_at"] = f"2022-10-07T22:{42 - n:02d}:12.000Z"
        tweet["conversation_id"] = tweet["id"]
    if len(tweets) > 1:
        tweets[1]["conversation_id"] = tweets[0]["id"]
        tweets[1]["referenced_tweets"] = [{"type": "replied_to", "id": tweets[0]["id"]}]
    body["includes"] = {"users": [
        {"id": i, "username": u, "name": nm, "verified": v,
         "public_metrics": {"followers_count": f, "following_count": 10, "tweet_count": 100, "listed_count": 1}}
        for i, u, nm, f, v in PEOPLE
    ]}
    return body


def enrich_dm_events(body: dict[str, Any]) -> dict[str, Any]:
    """The recorded DM events page with sender_id, dm_conversation_id and created_at added.

    The recording holds the two DMs @TweepyDev sent; the newest is turned into the customer's
    answer (sender = CUSTOMER_ID) so the page has one DM in and one out, as a real inbox does.
    """
    body = copy.deepcopy(body)
    for n, event in enumerate(body["data"]):
        event["sender_id"] = CUSTOMER_ID if n == 0 else OWN_ID
        event["dm_conversation_id"] = f"{CUSTOMER_ID}-{OWN_ID}"
        event["created_at"] = f"2022-10-28T01:0{5 - n}:00.000Z"
    body["includes"] = {"users": [
        {"id": CUSTOMER_ID, "username": "ada_rides", "name": "Ada Rides", "verified": False,
         "public_metrics": {"followers_count": 1532}},
    ]}
    return body


def as_x_shows(tweet_id: str, text: str, *, in_reply_to: str, author: str = "ada_rides", at: datetime | None = None) -> dict[str, Any]:
    """A tweet of ours as GET /2/users/:id/tweets returns it, shaped like the recorded timeline's tweets.

    What X does to a posted text is done here too: the reply starts with the @handle of the
    person answered, &, < and > are HTML-escaped, and every URL is a t.co link.
    """
    shown = re.sub(r"https?://\S+", "https://t.co/Zk3vQ1xAbC", text)
    shown = shown.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {
        "edit_history_tweet_ids": [tweet_id], "id": tweet_id, "text": f"@{author} {shown}",
        "created_at": _x_time(at or datetime.now(timezone.utc)), "in_reply_to_user_id": CUSTOMER_ID,
        "referenced_tweets": [{"type": "replied_to", "id": in_reply_to}],
    }


def timeline_noise() -> list[dict[str, Any]]:
    """The recorded timeline page's tweets with created_at added (minutes ago): tweets that match nothing."""
    now = datetime.now(timezone.utc)
    tweets = recorded("test_client_get_home_timeline", "GET", "/timelines/")["body"]["data"][:20]
    return [{**t, "created_at": _x_time(now - timedelta(minutes=n + 1))} for n, t in enumerate(copy.deepcopy(tweets))]


def enrich_dm_conversation(body: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The recorded page of the DM conversation with CUSTOMER_ID, as the lookup asks for it.

    Added: sender_id (@TweepyDev sent both "Testing" DMs), dm_conversation_id, and created_at one
    minute apart ending at `at`; next_token dropped (the last page).
    """
    body = copy.deepcopy(body)
    for n, event in enumerate(body["data"]):
        event.update(sender_id=OWN_ID, dm_conversation_id=f"{CUSTOMER_ID}-{OWN_ID}",
                     created_at=_x_time(at - timedelta(minutes=n)))
    body["meta"] = {k: v for k, v in body["meta"].items() if k != "next_token"}
    return body


def _x_time(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class FakeX:
    """Routes of the X API v2 that the plugin uses; every request tweepy makes is in `requests`."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.tweet_ids = iter(range(1456012973835788293, 1456012973835788293 + 1000))

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    @property
    def requests(self) -> list[Request]:
        return [req for req, _ in self.server.log]

    def sent(self, path_part: str) -> list[dict[str, Any]]:
        return [json.loads(r.get_data()) for r in self.requests if r.method == "POST" and path_part in r.path]

    # --- answers -----------------------------------------------------------------------
    def mentions(self, body: dict[str, Any] | None = None, *, status: int = 200, headers: dict[str, str] | None = None,
                 enriched: bool = True) -> None:
        rec = recorded("test_client_get_users_mentions", "GET", "/mentions")
        if body is None:
            body = enrich_mentions(rec["body"]) if enriched else rec["body"]
            body = {**body, "meta": {k: v for k, v in body["meta"].items() if k != "next_token"}}  # the last page
        self._answer("GET", f"/2/users/{OWN_ID}/mentions", body, status, {**rate_headers(rec), **(headers or {})})

    def dm_events(self, body: dict[str, Any] | None = None, *, status: int = 200, headers: dict[str, str] | None = None,
                  enriched: bool = True) -> None:
        rec = recorded("test_manage_and_lookup_direct_messages", "GET", "/dm_events", index=1)
        if body is None:
            body = enrich_dm_events(rec["body"]) if enriched else rec["body"]
        self._answer("GET", "/2/dm_events", body, status, {**rate_headers(rec), **(headers or {})})

    def create_tweet(self, *, status: int = 201, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        rec = recorded("test_client_create_and_delete_tweet", "POST", "/2/tweets")

        def handler(request: Request) -> Response:
            if body is not None:
                payload = body
            else:  # the recorded answer, with a fresh id per tweet so a thread has distinct ids
                sent = json.loads(request.get_data())
                payload = {"data": {"id": str(next(self.tweet_ids)), "text": sent.get("text", rec["body"]["data"]["text"])}}
            return Response(json.dumps(payload), status=status, headers={**rate_headers(rec), **(headers or {})},
                            content_type="application/json")

        self.server.expect_request("/2/tweets", method="POST").respond_with_handler(handler)

    def create_dm(self, *, status: int = 201, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        rec = recorded("test_manage_and_lookup_direct_messages", "POST", "/dm_conversations/with/")
        self.server.expect_request(
            f"/2/dm_conversations/with/{CUSTOMER_ID}/messages", method="POST"
        ).respond_with_json(body if body is not None else rec["body"], status=status,
                            headers={**rate_headers(rec), **(headers or {})})

    def own_tweets(self, *pages: list[dict[str, Any]], status: int = 200, body: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> None:
        """GET /2/users/:id/tweets: `pages` of tweets (newest first) chained by next_token, or `body` with `status`."""
        rec = recorded("test_client_get_home_timeline", "GET", "/timelines/")

        def handler(request: Request) -> Response:
            payload = body
            if payload is None:
                n = int(request.args.get("pagination_token", "page-0").removeprefix("page-"))
                tweets = pages[n] if n < len(pages) else []
                meta: dict[str, Any] = {"result_count": len(tweets)}
                if tweets:
                    meta.update(newest_id=tweets[0]["id"], oldest_id=tweets[-1]["id"])
                if n + 1 < len(pages):
                    meta["next_token"] = f"page-{n + 1}"
                payload = {"data": tweets, "meta": meta} if tweets else {"meta": meta}
            return Response(json.dumps(payload), status=status, headers={**rate_headers(rec), **(headers or {})},
                            content_type="application/json")

        self.server.expect_request(f"/2/users/{OWN_ID}/tweets", method="GET").respond_with_handler(handler)

    def dms_with(self, *, at: datetime | None = None, status: int = 200, body: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        """GET /2/dm_conversations/with/CUSTOMER_ID/dm_events: the recorded page (our two DMs, the newest at `at`)."""
        rec = recorded("test_manage_and_lookup_direct_messages", "GET", "/dm_conversations/with/")
        if body is None:
            body = enrich_dm_conversation(rec["body"], at or datetime.now(timezone.utc))
        self._answer("GET", f"/2/dm_conversations/with/{CUSTOMER_ID}/dm_events", body, status,
                     {**rate_headers(rec), **(headers or {})})

    def _answer(self, method: str, path: str, body: dict[str, Any], status: int, headers: dict[str, str]) -> None:
        self.server.expect_request(path, method=method).respond_with_json(body, status=status, headers=headers)


def too_many_requests(reset_in_s: int = 120) -> tuple[dict[str, Any], dict[str, str]]:
    """X's 429 answer (body as documented for v2) with its rate-limit headers."""
    reset = str(int(time.time()) + reset_in_s)
    body = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}
    return body, {"x-rate-limit-limit": "450", "x-rate-limit-remaining": "0", "x-rate-limit-reset": reset}


def unauthorized() -> dict[str, Any]:
    """X's 401 for a revoked or expired user token (v2 problem JSON)."""
    return {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
