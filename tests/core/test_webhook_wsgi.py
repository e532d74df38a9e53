"""config.wsgi: webhooks skip the middleware they never use, keep the rest; pages keep every one."""

from __future__ import annotations

import http.client
import io
import sys

import pytest
from django.core import signals
from django.db import close_old_connections

from channels_plugins.api.client import sign
from omnidesk.devtools.procs import (
    Proc,
    child_env,
    free_port,
    port_open,
    uvicorn_argv,
    wait_until,
)
from omnidesk.inbox.models import InboundEvent
from tests.conftest import api_body

SECURITY_HEADERS = ("content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy")


def call(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """One request through config.wsgi.application, in this process: status, headers (lower-case), body."""
    from config.wsgi import application

    environ = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "testserver", "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "testserver", "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json" if body else "",
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in (headers or {}).items()},
    }
    answer: dict[str, object] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: object = None) -> None:
        answer["status"] = int(status.split(" ", 1)[0])
        answer["headers"] = [(k.lower(), v) for k, v in response_headers]

    # as Django's test client does: the request must not close the test's connection (its transaction)
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        content = b"".join(application(environ, start_response))
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return answer["status"], answer["headers"], content


@pytest.mark.django_db
def test_a_webhook_is_stored_and_answered_with_every_security_header_and_no_cookie(api_account):
    body = api_body(id="w-1")
    status, headers, content = call("POST", "/hooks/acme-api/", body, {"X-Omnidesk-Signature": sign("s3cret", body)})
    assert status == 200, content
    names = {name for name, _ in headers}
    assert set(SECURITY_HEADERS) <= names and dict(headers)["x-frame-options"] == "DENY"
    assert "set-cookie" not in names
    assert InboundEvent.objects.filter(account=api_account).count() == 1
    body = api_body(id="w-2")
    status, _, _ = call("POST", "/hooks/acme-api/", body, {"X-Omnidesk-Signature": sign("wrong", body)})
    assert status == 401
    assert call("POST", "/hooks/no-such-account/", body, {"X-Omnidesk-Signature": sign("s3cret", body)})[0] == 404
    assert InboundEvent.objects.count() == 1


@pytest.mark.django_db
def test_a_page_still_goes_through_sessions_csrf_and_users(api_account):
    status, headers, content = call("GET", "/accounts/login/")
    assert status == 200, content
    names = {name for name, _ in headers}
    assert set(SECURITY_HEADERS) <= names
    cookies = [value for name, value in headers if name == "set-cookie"]
    assert any(value.strip().startswith("csrftoken=") for value in cookies)  # CsrfViewMiddleware ran
    assert "Cookie" in dict(headers).get("vary", "")  # the session middleware ran


def test_the_webhook_chain_leaves_out_only_what_a_webhook_never_uses():
    from django.conf import settings

    import config.wsgi

    kept = [path for path in settings.MIDDLEWARE if path not in config.wsgi.NOT_FOR_HOOKS]
    assert "omnidesk.inbox.middleware.DatabaseUnavailableMiddleware" in kept
    assert "omnidesk.security.headers.SecurityHeadersMiddleware" in kept
    assert "django.middleware.security.SecurityMiddleware" in kept
    assert config.wsgi.NOT_FOR_HOOKS <= set(settings.MIDDLEWARE)  # a renamed middleware is not silently kept


@pytest.mark.services
@pytest.mark.timeout(90)
def test_a_webhook_on_the_wsgi_server_answers_503_when_the_database_is_down():
    dead_port, port = free_port(), free_port()
    assert not port_open(dead_port)
    env = child_env(DATABASE_URL=f"postgres://postgres@127.0.0.1:{dead_port}/omnidesk")
    server = Proc("wsgi", uvicorn_argv(port=port, interface="wsgi"), env)
    try:
        wait_until(lambda: port_open(port) or not server.alive, timeout=30, what="uvicorn to listen")
        assert server.alive, server.output()
        body = api_body(id="outage-1")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        conn.request("POST", "/hooks/acme-api/", body=body,
                     headers={"Content-Type": "application/json", "X-Omnidesk-Signature": sign("s3cret", body)})
        resp = conn.getresponse()
        content = resp.read()
        conn.close()
        assert resp.status == 503, (resp.status, content[:500], server.output())
        assert resp.getheader("Retry-After") == "5" and resp.getheader("X-Content-Type-Options") == "nosniff"
    finally:
        server.stop()
