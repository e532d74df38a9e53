"""The outside world of the fault tests: one fake platform HTTP server (the API channel's
callback, the X API, the Graph API) and an SMTP sink, both counting what reached them.

Each fake answers like its real platform (shapes from the plugins' recorded fixtures), can be
told to fail for a while (5xx or 429 with the platform's own rate-limit headers) and can hold
one request after recording it, so a test can kill the sender while the platform already has
the reply. The API channel's receiver deduplicates on Idempotency-Key, as channels/api/doc.md
asks of it; the others do not, so a second delivery there is counted as a duplicate.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
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
    """Answer `status` to every send until `until` (monotonic); 0 = healthy."""

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


class FakePlatforms:
    """One HTTP server for the API callback (/callback), X (/2/…) and Graph (/v23.0/…)."""

    def __init__(self) -> None:
        self.deliveries = Deliveries()
        self.fault = Fault()
        self.hold_marker: int | None = None
        self.held = threading.Event()  # set when the held request has been recorded
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

    def hold(self, marker: int) -> None:
        """Record the next delivery of reply `marker`, then keep its answer until released."""
        self.hold_marker = marker
        self.held.clear()
        self.release.clear()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    # --- answers ---------------------------------------------------------------------------
    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], Any]:
        self.requests += 1
        if method != "POST":
            return 404, {}, {"error": f"no route {method} {path}"}
        if self.fault.active():
            self.fault.refused["api" if path == "/callback" else "twitter" if path.startswith("/2/") else "facebook"] += 1
            return self._refusal(path)
        if path == "/callback":
            payload = json.loads(body)
            text, key = payload.get("text", ""), headers.get("idempotency-key", "")
            repeat = key in self.api_keys
            self.api_keys.add(key)
            self._record("api", text, duplicate_key=repeat)
            return 200, {}, {"id": f"cb-{key}"}
        if path.startswith("/2/"):
            text = json.loads(body).get("text", "")
            self._record("twitter", text)
            if path == "/2/tweets":
                return 201, {}, {"data": {"id": str(next(self.ids)), "text": text}}
            return 201, {}, {"data": {"dm_conversation_id": "1-2", "dm_event_id": str(next(self.ids))}}
        if path.startswith("/v"):
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            text = form.get("message", "")  # a comment's text, or a Messenger message as JSON
            if text.startswith("{"):
                text = json.loads(text).get("text", "")
            self._record("facebook", text)
            if path.endswith("/comments"):
                return 200, {}, {"id": f"c_{next(self.ids)}"}
            recipient = json.loads(form.get("recipient", "{}"))
            return 200, {}, {"recipient_id": recipient.get("id", ""), "message_id": f"m_{next(self.ids)}"}
        return 404, {}, {"error": f"no route {path}"}

    def _record(self, channel: str, text: str, *, duplicate_key: bool = False) -> None:
        self.deliveries.add(channel, text, duplicate_key=duplicate_key)
        if self.hold_marker is not None and f"[r{self.hold_marker}]" in text and not duplicate_key:
            self.hold_marker = None
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
            path = self.path.split("?", 1)[0]
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, payload = platforms.answer(self.command, path, headers, body)
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
