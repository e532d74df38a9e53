"""The API channel beyond the kit: replies POSTed to a real local HTTP server, edge cases of parse."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from channels_plugins.api.adapter import ApiChannel, ApiConfig
from omnidesk.plugins.config import load_config
from omnidesk.plugins.contract import (
    AuthorizationRequired,
    CapabilityError,
    Headers,
    IdentityKind,
    IdentityRef,
    MalformedPayload,
    OutboundReply,
    PermanentSendError,
    RawEvent,
    RetryableSendError,
    SignatureInvalid,
    WebhookRequest,
)

SECRET = "s3cret"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class CallbackServer:
    """A local callback endpoint: records each request and answers as told."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    status: int = 200
    body: bytes = b'{"id": "cb-1"}'
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay_s: float = 0.0

    def answer(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.status, self.body, self.headers = status, body, {k.replace("_", "-"): v for k, v in headers.items()}


@pytest.fixture
def callback() -> Iterator[CallbackServer]:
    state = CallbackServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.received.append(Received(self.command, self.path, dict(self.headers.items()), body))
            time.sleep(state.delay_s)
            try:
                self.send_response(state.status)
                for name, value in state.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(state.body)))
                self.end_headers()
                self.wfile.write(state.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the timeout test)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/omnidesk/replies"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def channel(url: str, *, timeout_s: float = 5.0) -> ApiChannel:
    config = load_config(ApiConfig, {"callback_url": url, "timeout_s": timeout_s}, {"secret": SECRET})
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: 127.0.0.1 only
    return ApiChannel(config, account_slug="acme-api", session=session)  # type: ignore[arg-type]


def reply(**changes: object) -> OutboundReply:
    values: dict[str, object] = dict(
        idempotency_key="out-42-1",
        to=IdentityRef(IdentityKind.EXTERNAL, "visitor-4417", "acme-api"),
        text="We are on it: your parcel left the depot this morning.",
        visibility="private",
        ticket_ref=42,
        thread_key="chat-7781",
        in_reply_to="msg-01HF3ZC4MB",
    )
    values.update(changes)
    return OutboundReply(**values)  # type: ignore[arg-type]


# --- send --------------------------------------------------------------------------------


def test_reply_is_posted_signed_with_an_idempotency_key(callback):
    delivery = channel(callback.url).send(reply())
    assert delivery.external_id == "cb-1"
    (got,) = callback.received
    assert (got.method, got.path) == ("POST", "/omnidesk/replies")
    expected = "sha256=" + hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-Omnidesk-Signature"] == expected
    assert got.headers["Idempotency-Key"] == "out-42-1"
    assert got.headers["Content-Type"] == "application/json"
    assert json.loads(got.body) == {
        "type": "reply",
        "id": "out-42-1",
        "ticket": 42,
        "thread": "chat-7781",
        "in_reply_to": "msg-01HF3ZC4MB",
        "to": {"id": "visitor-4417"},
        "text": "We are on it: your parcel left the depot this morning.",
        "html": "",
        "public": False,
    }


@pytest.mark.parametrize(("status", "body"), [(200, b"ok"), (202, b"[]"), (204, b"")])
def test_a_2xx_without_an_id_keeps_our_idempotency_key(callback, status, body):
    callback.answer(status, body)
    assert channel(callback.url).send(reply()).external_id == "out-42-1"


@pytest.mark.parametrize(("status", "retry_after"), [(500, "30"), (503, "120"), (429, "7")])
def test_server_errors_and_rate_limits_are_retryable_with_retry_after(callback, status, retry_after):
    callback.answer(status, b"busy", Retry_After=retry_after)
    with pytest.raises(RetryableSendError) as info:
        channel(callback.url).send(reply())
    assert not isinstance(info.value, AuthorizationRequired)
    assert info.value.retryable and info.value.retry_after == float(retry_after)
    assert f"callback answered {status}: busy" in str(info.value)


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_need_reauthorization(callback, status):
    callback.answer(status, b'{"error": "bad signature"}')
    with pytest.raises(AuthorizationRequired) as info:
        channel(callback.url).send(reply())
    assert info.value.code == "needs_reauthorization" and "bad signature" in str(info.value)


def test_a_rejected_reply_is_permanent_with_the_servers_message(callback):
    callback.answer(400, b'{"error": "visitor-4417 has left the chat"}')
    with pytest.raises(PermanentSendError) as info:
        channel(callback.url).send(reply())
    assert not info.value.retryable and not isinstance(info.value, CapabilityError)
    assert "visitor-4417 has left the chat" in str(info.value) and "(400)" in str(info.value)


def test_connection_refused_is_retryable():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RetryableSendError) as info:
        channel(f"http://127.0.0.1:{port}/replies").send(reply())
    assert "unreachable" in str(info.value)


def test_a_slow_callback_times_out_retryably(callback):
    callback.delay_s = 1.0
    with pytest.raises(RetryableSendError) as info:
        channel(callback.url, timeout_s=0.2).send(reply())
    assert "timed out" in str(info.value)


def test_no_callback_url_refuses_before_any_network(block_network):
    with pytest.raises(PermanentSendError, match="has no callback_url"):
        channel("").send(reply())
    assert block_network == []


# --- verify ------------------------------------------------------------------------------


def webhook(body: bytes, **headers: str) -> WebhookRequest:
    return WebhookRequest("POST", "https://desk.example.com/hooks/acme-api/", Headers(headers), {}, body)


@pytest.mark.parametrize(
    ("signature", "why"),
    [
        ("", "missing X-Omnidesk-Signature"),
        ("sha1=abc", "must be 'sha256=<hex>'"),
        ("sha256=" + "0" * 64, "does not match"),
    ],
)
def test_verify_refuses_bad_signatures(signature, why):
    headers = {"X-Omnidesk-Signature": signature} if signature else {}
    with pytest.raises(SignatureInvalid, match=why):
        channel("").verify(webhook(b"{}", **headers))


def test_verify_accepts_upper_case_hex_and_any_header_case():
    digest = hmac.new(SECRET.encode(), b"{}", hashlib.sha256).hexdigest().upper()
    assert channel("").verify(webhook(b"{}", **{"x-omnidesk-signature": f"sha256={digest}"})) is None


# --- parse: input that once crashed instead of raising MalformedPayload ----------------------


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "not JSON we can read"),
        (b'{"id": ' + b"9" * 5000 + b"}", "not JSON we can read"),
        (b'{"id": "m", "author": {"id": "u"}, "text": "x", "sent_at": "9999-12-31T23:00:00-05:00"}', "out of range"),
        (b'{"type": "delivery", "id": "r", "state": "read", "at": "0001-01-01T00:30:00+01:00"}', "out of range"),
    ],
)
def test_absurd_but_signed_input_is_malformed_not_a_crash(body, why):
    with pytest.raises(MalformedPayload, match=why):
        channel("").parse(RawEvent(body=body))


def test_html_is_sanitized_in_parse():
    body = json.dumps({"id": "m", "author": {"id": "u"}, "html": '<b onmouseover="x()">hi</b><script>x()</script>'})
    (item,) = channel("").parse(RawEvent(body=body.encode()))
    assert item.html == "<b>hi</b>"  # type: ignore[union-attr]


def test_html_that_sanitizes_to_nothing_is_not_a_message():
    body = json.dumps({"id": "m", "author": {"id": "u"}, "html": "<script>x()</script>"})
    with pytest.raises(MalformedPayload, match="text: required"):
        channel("").parse(RawEvent(body=body.encode()))
