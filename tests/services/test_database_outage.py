"""A webhook while the database is unreachable: 503 with Retry-After, never a 500, never a 2xx."""

from __future__ import annotations

import http.client
import json

import pytest

from channels_plugins.api.client import sign
from tests.conftest import api_body

from .procs import free_port, port_open, start_asgi, wait_until

# No database of its own is needed: the server is pointed at a PostgreSQL port where nothing listens.
pytestmark = [pytest.mark.services, pytest.mark.timeout(90)]


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_webhook_answers_503_with_retry_after_when_the_database_is_down():
    dead_port = free_port()
    assert not port_open(dead_port)
    port = free_port()
    server = start_asgi(port=port, database_url=f"postgres://postgres@127.0.0.1:{dead_port}/omnidesk")
    try:
        wait_until(lambda: port_open(port) or not server.alive, timeout=30, what="uvicorn to listen")
        assert server.alive, server.output()
        body = api_body(id="outage-1")
        for slug in ("acme-api", "demo-api", "no-such-account"):  # the account lookup itself fails: any slug
            status, headers, content = post(port, f"/hooks/{slug}/", body, {"X-Omnidesk-Signature": sign("s3cret", body)})
            assert status == 503, (status, content[:500], server.output())
            assert int(headers["retry-after"]) > 0
            answer = json.loads(content)
            assert answer["error"] == "database_unavailable"
            assert "Traceback" not in content.decode()
    finally:
        server.stop()
