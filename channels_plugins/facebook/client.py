"""facebook-sdk 3.1.0 wrapped: a current Graph version, appsecret_proof on every call, typed errors.

facebook-sdk was last released in 2018. Three of its habits are worked around here and nowhere
else: its constructor accepts only versions 2.8 to 3.1 (all long retired by Meta), so the graph
is built without one and `version` is set afterwards; it never sends `appsecret_proof`, which
Pages with "Require App Secret" switched on demand, so it is added to every call; and it reads
the host from the module constant FACEBOOK_GRAPH_URL, so another host (a regional proxy, the
tests' fake Graph server) is reached through a transport adapter mounted on its session,
never by patching the SDK.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import facebook
import requests
from requests.adapters import HTTPAdapter

from omnidesk.plugins.contract import (
    AuthorizationRequired,
    PermanentSendError,
    ReplyWindowClosed,
    RetryableSendError,
)

DEFAULT_GRAPH_URL = "https://graph.facebook.com"

#: Graph error codes (https://developers.facebook.com/docs/graph-api/guides/error-handling)
TOKEN_INVALID = frozenset({190, 102})
RATE_LIMITED = frozenset({4, 17, 32, 613, 80001, 80006})
TRANSIENT = frozenset({1, 2})
#: a person Messenger will not let us reach now: outside the window, or not available
OUTSIDE_WINDOW_CODES = frozenset({10, 551})
OUTSIDE_WINDOW_SUBCODES = frozenset({2018278, 2018065, 2018108, 2534022, 1545041})


def appsecret_proof(app_secret: str, access_token: str) -> str:
    """Hex HMAC-SHA256 of the access token keyed with the app secret, as Graph expects it."""
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


class HostRewrite(HTTPAdapter):
    """Sends what facebook-sdk addresses to graph.facebook.com to another base URL instead."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/") + "/"

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        url = request.url or ""
        if url.startswith(facebook.FACEBOOK_GRAPH_URL):
            request.url = self.base_url + url[len(facebook.FACEBOOK_GRAPH_URL) :]
        return super().send(request, *args, **kwargs)


@dataclass(frozen=True)
class GraphFailure:
    """What Graph said when it refused a call (parsed from facebook-sdk's GraphAPIError)."""

    code: int | None
    subcode: int | None
    message: str
    status: int | None
    transient: bool
    retry_after: float | None


class GraphClient:
    """One Page's access to the Graph API, through facebook-sdk."""

    def __init__(
        self,
        *,
        access_token: str,
        app_secret: str,
        version: str,
        graph_url: str = DEFAULT_GRAPH_URL,
        timeout_s: float = 20.0,
        session: requests.Session | None = None,
    ) -> None:
        self._token = access_token
        self._proof = appsecret_proof(app_secret, access_token)
        self._last = threading.local()
        session = session or requests.Session()
        if graph_url.rstrip("/") != DEFAULT_GRAPH_URL:
            session.mount(DEFAULT_GRAPH_URL + "/", HostRewrite(graph_url))
        session.hooks["response"].append(self._remember)
        # facebook-sdk rejects every current version in its constructor: build, then set it.
        self.graph = facebook.GraphAPI(access_token=access_token, timeout=timeout_s, session=session)
        self.graph.version = version

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last.response = response

    def post(self, path: str, data: Mapping[str, object]) -> dict[str, Any]:
        """POST `data` (form-encoded; dicts as JSON) to /{version}/{path}; raises a SendError."""
        form = {k: json.dumps(v, separators=(",", ":")) if isinstance(v, (dict, list)) else str(v) for k, v in data.items()}
        return self._request(path, post_args=form)

    def get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        """GET /{version}/{path} (a delivery lookup); raises a SendError, as a send would."""
        return self._request(path, args=dict(params))

    def _request(
        self, path: str, *, args: dict[str, str] | None = None, post_args: dict[str, str] | None = None
    ) -> dict[str, Any]:
        proof = {"access_token": self._token, "appsecret_proof": self._proof}
        query, form = (None, {**post_args, **proof}) if post_args is not None else ({**(args or {}), **proof}, None)
        self._last.response = None
        try:
            result = self.graph.request(f"{self.graph.version}/{path.lstrip('/')}", args=query, post_args=form)
        except requests.Timeout as exc:
            raise RetryableSendError(
                "the Graph API did not answer in time", maybe_delivered=not isinstance(exc, requests.ConnectTimeout)
            ) from exc
        except requests.RequestException as exc:
            raise RetryableSendError(f"the Graph API is unreachable: {type(exc).__name__}", maybe_delivered=True) from exc
        except facebook.GraphAPIError as exc:
            raise send_error(failure(exc, getattr(self._last, "response", None))) from None
        except (KeyError, ValueError) as exc:  # facebook-sdk trips over answers without a JSON body
            response = getattr(self._last, "response", None)
            raise send_error(failure(facebook.GraphAPIError(str(exc)), response)) from None
        response = getattr(self._last, "response", None)
        if response is not None and response.status_code >= 400:
            # facebook-sdk ignores the status: an error page without Graph's error object (a proxy's
            # 502, or text it mistakes for a token answer) would otherwise pass for a sent reply
            raise send_error(failure(facebook.GraphAPIError({}), response))
        if not isinstance(result, dict):
            raise PermanentSendError(f"the Graph API answered {type(result).__name__}, not an object")
        return result


def failure(exc: facebook.GraphAPIError, response: requests.Response | None) -> GraphFailure:
    result = exc.result if isinstance(exc.result, dict) else {}
    error = result.get("error") if isinstance(result.get("error"), dict) else {}
    code = exc.code if isinstance(exc.code, int) else None
    subcode = error.get("error_subcode")
    message = str(error.get("error_user_msg") or error.get("message") or "")
    if not message:  # not a Graph error body (a proxy's HTML page): say what came back instead
        message = (response.text[:200].strip() if response is not None else "") or str(exc.message or "unknown error")
    return GraphFailure(
        code=code,
        subcode=subcode if isinstance(subcode, int) else None,
        message=message,
        status=response.status_code if response is not None else None,
        transient=error.get("is_transient") is True,
        retry_after=retry_after(response.headers) if response is not None else None,
    )


def send_error(f: GraphFailure) -> Exception:
    """Graph's refusal as the contract's typed error: does a retry help, must someone act?"""
    if f.code is not None:
        said = f"Graph error {f.code}" + (f"/{f.subcode}" if f.subcode else "") + f": {f.message}"
    else:
        said = f"HTTP {f.status or 'error'}: {f.message[:200]}"
    if f.code in TOKEN_INVALID:
        return AuthorizationRequired(
            f"the Page access token is expired or revoked ({said}); reconnect the Page with a new token"
        )
    if f.code in RATE_LIMITED:
        return RetryableSendError(f"Meta is rate limiting this Page or app ({said})", retry_after=f.retry_after)
    if f.code in OUTSIDE_WINDOW_CODES or f.subcode in OUTSIDE_WINDOW_SUBCODES or "allowed window" in f.message:
        return ReplyWindowClosed(f"Messenger will not deliver this reply now ({said})")
    if f.transient or f.code in TRANSIENT or (f.status is not None and f.status >= 500):
        # a server-side failure may come after the post was made
        return RetryableSendError(f"the Graph API failed, a retry may help ({said})", retry_after=f.retry_after,
                                  maybe_delivered=True)
    return PermanentSendError(f"Meta refused the reply ({said})")


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds until Meta lets us call again, from Retry-After or the usage headers (None: not said)."""
    value = headers.get("Retry-After")
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass
    minutes = 0.0
    for name in ("x-business-use-case-usage", "x-page-usage", "x-app-usage", "x-ad-account-usage"):
        raw = headers.get(name)
        if not raw:
            continue
        try:
            usage = json.loads(raw)
        except ValueError:
            continue
        for entry in _usage_entries(usage):
            regain = entry.get("estimated_time_to_regain_access")
            if isinstance(regain, (int, float)) and not isinstance(regain, bool):
                minutes = max(minutes, float(regain))
    return minutes * 60 if minutes > 0 else None


def _usage_entries(usage: object) -> list[dict[str, Any]]:
    # X-App-Usage is one object; X-Business-Use-Case-Usage maps ids to lists of objects.
    if isinstance(usage, dict) and any(isinstance(v, list) for v in usage.values()):
        return [e for v in usage.values() if isinstance(v, list) for e in v if isinstance(e, dict)]
    return [usage] if isinstance(usage, dict) else []
