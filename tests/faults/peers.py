"""The outside world of the fault tests: one fake platform HTTP server (the API channel's
callback, the X API, the Graph API) and an SMTP sink, both counting what reached them.

Each fake answers like its real platform (shapes from the plugins' recorded fixtures), can be
told to fail for a while (5xx or 429 with the platform's own rate-limit headers) and can hold
requests after recording them, so a test can kill the sender while the platform already has
the reply. The API channel's receiver deduplicates on Idempotency-Key, as channels/api/doc.md
asks of it; the others do not, so a second delivery there is counted as a duplicate. X and
Graph also answer the reads of a delivery lookup (delivery_find) from what they were sent,
shaped as the plugin tests' fake servers answer them (tests/plugins/twitter/fakex.py,
tests/plugins/facebook/conftest.py), so an interrupted reply is found there, not posted again.
"""

from __future__ import annotations

import html
import itertools
import json
import logging
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller

from tests.services.procs import free_port

#: every reply a test makes carries one of these, so deliveries can be matched to replies
MARKER = re.compile(r"\[r(\d+)\]")


@dataclass
class Fault:
    """Answer `status` to every request (a send or a lookup) until `until` (monotonic); 0 = healthy."""

    status: int = 0
    until: float = 0.0
    #: channel → sends refused
    refused: Counter[str] = field(default_factory=Counter)

    def active(self) -> bool:
        return bool(self.status) and time.monotonic() < self.until


@dataclass
class Deliveries:
    """What reached the platforms: reply marker → deliveries, by channel."""

    delivered: Counter[tuple[str, int]] = field(default_factory=Counter)
    #: API-channel requests repeating an Idempotency-Key already delivered (deduplicated by the receiver)
    deduplicated: Counter[tuple[str, int]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, channel: str, text: str, *, duplicate_key: bool = False) -> None:
        for found in MARKER.findall(text):
            with self.lock:
                (self.deduplicated if duplicate_key else self.delivered)[(channel, int(found))] += 1

    def markers(self) -> set[int]:
        with self.lock:
            return {marker for (_, marker) in self.delivered}

    def duplicated(self) -> dict[tuple[str, int], int]:
        with self.lock:
            return {key: n for key, n in self.delivered.items() if n > 1}


@dataclass(frozen=True)
class Posted:
    """A tweet, DM, comment or Messenger message a platform accepted, as its lookups show it."""

    id: str
    text: str
    #: the tweet or comment answered, or the person messaged
    to: str
    created_at: datetime


class FakePlatforms:
    """One HTTP server for the API callback (/callback), X (/2/…) and Graph (/v23.0/…), hosting
    the X account `x_user_id` and the Facebook Page `page_id`."""

    def __init__(self, *, x_user_id: str, page_id: str) -> None:
        self.x_user_id, self.page_id = x_user_id, page_id
        self.deliveries = Deliveries()
        self.fault = Fault()
        #: what X and Graph accepted, by kind ("tweet", "dm", "comment", "messenger"), oldest first
        self.posted: dict[str, list[Posted]] = {kind: [] for kind in ("tweet", "dm", "comment", "messenger")}
        #: delivery-lookup reads answered, by channel
        self.lookups: Counter[str] = Counter()
        self.holding: set[int] = set()
        self.hold_lock = threading.Lock()
        self.held = threading.Event()  # set when every held request has been recorded
        self.release = threading.Event()
        self.api_keys: set[str] = set()
        self.ids = itertools.count(1_700_000_000_000_000_000)
        self.requests = 0
        self.server = _QuietServer(("127.0.0.1", free_port()), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail(self, status: int, seconds: float) -> None:
        self.fault = Fault(status=status, until=time.monotonic() + seconds)

    def hold(self, *markers: int) -> None:
        """Record the next delivery of each reply in `markers`, then keep its answer until released."""
        with self.hold_lock:
            self.holding = set(markers)
        self.held.clear()
        self.release.clear()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    # --- answers ---------------------------------------------------------------------------
    def answer(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               body: bytes) -> tuple[int, dict[str, str], Any]:
        self.requests += 1
        if self.fault.active():
            self.fault.refused["api" if path == "/callback" else "twitter" if path.startswith("/2/") else "facebook"] += 1
            return self._refusal(path)
        if method == "GET" and path.startswith("/2/"):
            return self._x_lookup(path, query)
        if method == "GET" and path.startswith("/v"):
            return self._graph_lookup(path, query)
        if method != "POST":
            return 404, {}, {"error": f"no route {method} {path}"}
        if path == "/callback":
            payload = json.loads(body)
            text, key = payload.get("text", ""), headers.get("idempotency-key", "")
            repeat = key in self.api_keys
            self.api_keys.add(key)
            self._record("api", text, duplicate_key=repeat)
            return 200, {}, {"id": f"cb-{key}"}
        if path.startswith("/2/"):
            return self._x_post(path, json.loads(body))
        if path.startswith("/v"):
            return self._graph_post(path, {k: v[0] for k, v in parse_qs(body.decode()).items()})
        return 404, {}, {"error": f"no route {path}"}

    def _x_post(self, path: str, payload: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        """POST /2/tweets (a reply names the tweet it answers) or /2/dm_conversations/with/:id/messages."""
        text, item_id = payload.get("text", ""), str(next(self.ids))
        if path == "/2/tweets":
            answered = str((payload.get("reply") or {}).get("in_reply_to_tweet_id") or "")
            self.posted["tweet"].append(Posted(item_id, text, answered, _now()))
            self._record("twitter", text)
            return 201, {}, {"data": {"id": item_id, "text": text}}
        person = path.split("/")[4]
        self.posted["dm"].append(Posted(item_id, text, person, _now()))
        self._record("twitter", text)
        return 201, {}, {"data": {"dm_conversation_id": self._dm_conversation(person), "dm_event_id": item_id}}

    def _graph_post(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        """POST /{object-id}/comments, or /me/messages (a Messenger message, `message` as JSON)."""
        node = _graph_path(path)
        if node.endswith("/comments"):
            item = Posted(f"c_{next(self.ids)}", form.get("message", ""), node.removesuffix("/comments"), _now())
            self.posted["comment"].append(item)
            self._record("facebook", item.text)
            return 200, {}, {"id": item.id}
        recipient = json.loads(form.get("recipient", "{}")).get("id", "")
        item = Posted(f"m_{next(self.ids)}", json.loads(form.get("message", "{}")).get("text", ""), recipient, _now())
        self.posted["messenger"].append(item)
        self._record("facebook", item.text)
        return 200, {}, {"recipient_id": recipient, "message_id": item.id}

    def _x_lookup(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        """GET /2/users/:id/tweets (the account's own tweets since start_time) or
        /2/dm_conversations/with/:id/dm_events; one page, newest first (the tests post far fewer
        than X's 100 a page)."""
        self.lookups["twitter"] += 1
        if path == f"/2/users/{self.x_user_id}/tweets":
            start = datetime.fromisoformat(query["start_time"])
            # X shows a posted text back with &, < and > HTML-escaped
            items = [{"edit_history_tweet_ids": [p.id], "id": p.id, "text": html.escape(p.text, quote=False),
                      "created_at": _x_time(p.created_at), "referenced_tweets": [{"type": "replied_to", "id": p.to}]}
                     for p in self._newest("tweet") if p.created_at >= start]
        elif path.startswith("/2/dm_conversations/with/") and path.endswith("/dm_events"):
            person = path.split("/")[4]
            items = [{"id": p.id, "text": p.text, "event_type": "MessageCreate", "sender_id": self.x_user_id,
                      "dm_conversation_id": self._dm_conversation(person), "created_at": _x_time(p.created_at)}
                     for p in self._newest("dm", to=person)]
        else:
            return 404, {}, {"title": "Not Found Error", "type": "about:blank", "status": 404, "detail": path}
        meta: dict[str, Any] = {"result_count": len(items)}
        if items:
            meta.update(newest_id=items[0]["id"], oldest_id=items[-1]["id"])
        return 200, {}, {"data": items, "meta": meta} if items else {"meta": meta}

    def _graph_lookup(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        """GET /{object-id}/comments, /{page-id}/conversations?user_id= and /{conversation-id}/messages.

        One page, newest first, no `paging.next`; the Page's items carry `from` = the Page.
        """
        self.lookups["facebook"] += 1
        node = _graph_path(path)
        if node == f"{self.page_id}/conversations":
            person = query.get("user_id", "")
            return 200, {}, {"data": [{"id": f"t_{person}"}] if self._newest("messenger", to=person) else []}
        if node.endswith("/comments"):
            found = self._newest("comment", to=node.removesuffix("/comments"))
        elif node.startswith("t_") and node.endswith("/messages"):
            found = self._newest("messenger", to=node.removeprefix("t_").removesuffix("/messages"))
        else:
            return 400, {}, {"error": {"message": f"Unknown path components: /{node}", "type": "OAuthException",
                                       "code": 2500, "fbtrace_id": "F3"}}
        page = {"name": "Acme", "id": self.page_id}
        return 200, {}, {"data": [{"id": p.id, "message": p.text, "from": page,
                                   "created_time": p.created_at.strftime("%Y-%m-%dT%H:%M:%S+0000")} for p in found]}

    def _newest(self, kind: str, *, to: str | None = None) -> list[Posted]:
        return [p for p in reversed(self.posted[kind]) if to is None or p.to == to]

    def _dm_conversation(self, person: str) -> str:
        """X's id of a one-to-one DM conversation: both user ids, the smaller first."""
        return "-".join(sorted((person, self.x_user_id), key=int))

    def _record(self, channel: str, text: str, *, duplicate_key: bool = False) -> None:
        """Count a delivery (already kept for the lookups), then hold its answer if a test asked."""
        self.deliveries.add(channel, text, duplicate_key=duplicate_key)
        if duplicate_key:
            return
        with self.hold_lock:
            marker = next((m for m in self.holding if f"[r{m}]" in text), None)
            if marker is None:
                return
            self.holding.discard(marker)
            if not self.holding:
                self.held.set()
        self.release.wait(60)  # the sender is killed meanwhile; its socket goes with it

    def _refusal(self, path: str) -> tuple[int, dict[str, str], Any]:
        status = self.fault.status
        if path.startswith("/2/"):
            reset = str(int(time.time()) + 1)
            headers = {"x-rate-limit-limit": "300", "x-rate-limit-remaining": "0", "x-rate-limit-reset": reset}
            return status, headers, {"title": "Too Many Requests" if status == 429 else "Service Unavailable",
                                     "type": "about:blank", "status": status, "detail": "try later"}
        if path.startswith("/v"):
            if status == 429:  # Graph's rate limit is an error code on a 400, with the usage headers
                return 400, {"Retry-After": "1"}, {"error": {"message": "Application request limit reached",
                                                             "type": "OAuthException", "code": 4, "fbtrace_id": "F1"}}
            return status, {}, {"error": {"message": "An unexpected error has occurred.", "type": "OAuthException",
                                          "code": 2, "is_transient": True, "fbtrace_id": "F2"}}
        return status, {"Retry-After": "1"}, {"error": "busy"}


def _now() -> datetime:
    return datetime.now(UTC)


def _x_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _graph_path(path: str) -> str:
    """/v23.0/{node}/{edge} → "{node}/{edge}"."""
    return path.split("/", 2)[2]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a killed sender resets its connection: expected here, not worth a traceback


def _handler(platforms: FakePlatforms) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self._serve()

        def do_GET(self) -> None:  # noqa: N802
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            headers = {k.lower(): v for k, v in self.headers.items()}
            params = {k: v[0] for k, v in parse_qs(query).items()}
            status, extra, payload = platforms.answer(self.command, path, params, headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


class SmtpSink:
    """An SMTP server that records the reply markers of every mail; while the platforms' fault
    is active it answers 451 (try again later), as a busy relay does."""

    def __init__(self, deliveries: Deliveries, platforms: FakePlatforms) -> None:
        self.deliveries = deliveries
        self.platforms = platforms
        self.port = free_port()
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP line at INFO
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's naming
        if self.platforms.fault.active():
            self.platforms.fault.refused["email"] += 1
            return "451 4.3.0 Try again later"
        mail = message_from_bytes(bytes(envelope.content), policy=policy.default)
        body = mail.get_body(preferencelist=("plain",))
        self.deliveries.add("email", body.get_content() if body is not None else "")
        return "250 2.0.0 Ok: queued"

    def close(self) -> None:
        self.controller.stop()
