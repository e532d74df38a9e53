"""tweepy's API v2 `Client`, wrapped: another host, rate-limit headers, typed errors.

tweepy builds every URL on the fixed host https://api.twitter.com and sends it through
`client.session` (a requests.Session). To reach another base URL (a proxy, a regional host,
the local fake in tests) we mount a transport adapter for that host which rewrites the
URL; tweepy itself is not patched. OAuth 1.0a signs the original URL, which is what X sees
behind a transparent proxy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import tweepy
from requests.adapters import HTTPAdapter

from omnidesk.plugins.contract import AuthorizationRequired, PermanentSendError, RetryableSendError

DEFAULT_HOST = "https://api.twitter.com"
MENTION_FIELDS: Mapping[str, Any] = {
    "expansions": ["author_id", "referenced_tweets.id"],
    "tweet_fields": ["created_at", "conversation_id", "in_reply_to_user_id", "referenced_tweets", "entities", "note_tweet"],
    "user_fields": ["public_metrics", "verified", "username", "name"],
}
#: what a delivery lookup needs of the account's own tweets and DMs
OWN_TWEET_FIELDS = ["created_at", "referenced_tweets", "in_reply_to_user_id"]
OWN_DM_FIELDS = ["id", "text", "event_type", "created_at", "dm_conversation_id", "sender_id"]
DM_FIELDS: Mapping[str, Any] = {
    "expansions": ["sender_id"],
    "dm_event_fields": ["id", "text", "event_type", "created_at", "dm_conversation_id", "sender_id", "entities"],
    "user_fields": ["public_metrics", "verified", "username", "name"],
}


class XTransport(HTTPAdapter):
    """Mounted for https://api.twitter.com: sends to `base_url` instead, with a timeout.

    tweepy passes no timeout, and a hung connection must not hang a poller or a sender.
    """

    def __init__(self, base_url: str = DEFAULT_HOST, timeout_s: float = 15.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = urlsplit(base_url.rstrip("/"))
        self.timeout_s = timeout_s

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        url = urlsplit(request.url or "")
        request.url = urlunsplit((self.target.scheme, self.target.netloc, self.target.path + url.path, url.query, ""))
        if self.target.hostname in ("127.0.0.1", "localhost", "::1"):
            kwargs["proxies"] = {}  # a local target is never reached through the environment's proxy
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout_s
        return super().send(request, *args, **kwargs)


class RateLimited(Exception):
    """X said 429, or a response left no requests in the window: wait `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:.0f} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Page:
    body: bytes
    data: dict[str, Any]
    #: seconds until the window resets when this response used up the last request, else None
    exhausted_for: float | None


def retry_after_from(headers: Mapping[str, str], now: float | None = None) -> float:
    """Seconds until `x-rate-limit-reset` (an epoch second); 60 when X does not say."""
    now = time.time() if now is None else now
    try:
        return max(1.0, float(headers["x-rate-limit-reset"]) - now)
    except (KeyError, TypeError, ValueError):
        return 60.0


def _exhausted(headers: Mapping[str, str]) -> float | None:
    remaining = headers.get("x-rate-limit-remaining")
    if remaining is not None and remaining.strip() == "0":
        return retry_after_from(headers)
    return None


def _x_message(exc: tweepy.HTTPException) -> str:
    parts = [str(m) for m in exc.api_messages] or [exc.response.text[:200] if exc.response is not None else ""]
    return "; ".join(p for p in parts if p) or exc.response.reason


# 403 is X's answer both to a revoked app and to content it refuses (a duplicate tweet, a
# reply to a conversation we may not join); only the first needs re-authorization.
_REFUSAL_HINTS = ("duplicate", "not allowed", "not permitted", "cannot send messages", "reply to this conversation")


class XClient:
    def __init__(
        self,
        *,
        consumer_key: str,
        consumer_secret: str,
        access_token: str,
        access_token_secret: str,
        bearer_token: str | None = None,
        base_url: str = DEFAULT_HOST,
        timeout_s: float = 15.0,
    ) -> None:
        self.api = tweepy.Client(
            bearer_token=bearer_token,
            consumer_key=consumer_key,
            consumer_secret=consumer_secret,
            access_token=access_token,
            access_token_secret=access_token_secret,
            return_type=requests.Response,
            wait_on_rate_limit=False,  # a poller thread must never sleep 15 minutes inside a request
        )
        self.api.session.mount(DEFAULT_HOST, XTransport(base_url, timeout_s))

    # --- reading ---------------------------------------------------------------------------

    def mentions(self, user_id: str, *, since_id: str | None, pagination_token: str | None) -> Page:
        return self._read(
            lambda: self.api.get_users_mentions(
                user_id, since_id=since_id, pagination_token=pagination_token, max_results=100, user_auth=True,
                **MENTION_FIELDS,
            )
        )

    def dm_events(self) -> Page:
        return self._read(lambda: self.api.get_direct_message_events(max_results=100, user_auth=True, **DM_FIELDS))

    def own_tweets(self, user_id: str, *, start_time: datetime, pagination_token: str | None) -> dict[str, Any]:
        """One page of the account's own tweets since `start_time`, newest first; raises a SendError."""
        return self._lookup(
            lambda: self.api.get_users_tweets(
                user_id, start_time=start_time, pagination_token=pagination_token, max_results=100,
                tweet_fields=OWN_TWEET_FIELDS, user_auth=True,
            )
        )

    def dms_with(self, participant_id: str, *, pagination_token: str | None) -> dict[str, Any]:
        """One page of the DM conversation with one person, newest first; raises a SendError."""
        return self._lookup(
            lambda: self.api.get_direct_message_events(
                participant_id=participant_id, event_types="MessageCreate", pagination_token=pagination_token,
                max_results=100, dm_event_fields=OWN_DM_FIELDS, user_auth=True,
            )
        )

    def _read(self, call: Any) -> Page:
        try:
            response: requests.Response = call()
        except tweepy.TooManyRequests as exc:
            raise RateLimited(retry_after_from(exc.response.headers)) from None
        except (tweepy.Unauthorized, tweepy.Forbidden) as exc:
            raise AuthorizationRequired(
                f"X refused the account's credentials ({exc.response.status_code}): {_x_message(exc)}"
            ) from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise tweepy.TweepyException(f"X answered {response.status_code} with a body that is not a JSON object")
        return Page(body=response.content, data=data, exhausted_for=_exhausted(response.headers))

    # --- sending ---------------------------------------------------------------------------

    def create_tweet(self, text: str, *, in_reply_to: str | None) -> str:
        data = self._send(lambda: self.api.create_tweet(text=text, in_reply_to_tweet_id=in_reply_to or None))
        tweet_id = str(data.get("id") or "")
        if not tweet_id:
            raise RetryableSendError(f"X accepted the tweet but returned no id: {json.dumps(data)[:200]}",
                                     maybe_delivered=True)
        return tweet_id

    def create_direct_message(self, participant_id: str, text: str) -> tuple[str, str]:
        """Send a DM; (dm_event_id, dm_conversation_id)."""
        data = self._send(lambda: self.api.create_direct_message(participant_id=participant_id, text=text))
        return str(data.get("dm_event_id") or ""), str(data.get("dm_conversation_id") or "")

    def _send(self, call: Any) -> dict[str, Any]:
        response = self._call(call, "the reply")
        try:
            data = response.json().get("data")
        except (ValueError, AttributeError):
            data = None
        if not isinstance(data, dict):
            raise RetryableSendError(f"X answered {response.status_code} without a data object", maybe_delivered=True)
        return data

    def _lookup(self, call: Any) -> dict[str, Any]:
        response = self._call(call, "the lookup")
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise RetryableSendError(f"X answered {response.status_code} with a body that is not a JSON object")
        return data

    def _call(self, call: Any, what: str) -> requests.Response:
        """Make one call for sending (or for a delivery lookup); X's refusals as the contract's SendErrors."""
        try:
            response: requests.Response = call()
        except tweepy.TooManyRequests as exc:
            raise RetryableSendError(
                f"X rate limit reached: {_x_message(exc)}", retry_after=retry_after_from(exc.response.headers)
            ) from None
        except tweepy.Unauthorized as exc:
            raise AuthorizationRequired(f"X refused the account's credentials (401): {_x_message(exc)}") from None
        except tweepy.Forbidden as exc:
            message = _x_message(exc)
            if any(hint in message.lower() for hint in _REFUSAL_HINTS):
                raise PermanentSendError(f"X refused {what} (403): {message}") from None
            raise AuthorizationRequired(f"X refused the account's credentials (403): {message}") from None
        except tweepy.TwitterServerError as exc:
            raise RetryableSendError(
                f"X is having trouble ({exc.response.status_code}): {_x_message(exc)}", maybe_delivered=True
            ) from None
        except tweepy.HTTPException as exc:
            raise PermanentSendError(f"X rejected {what} ({exc.response.status_code}): {_x_message(exc)}") from None
        except requests.RequestException as exc:
            raise RetryableSendError(
                f"X could not be reached: {type(exc).__name__}", maybe_delivered=not isinstance(exc, requests.ConnectTimeout)
            ) from None
        return response
