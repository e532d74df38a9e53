"""Shared helpers of the Facebook plugin's tests: a configured channel, signed webhooks, a fake Graph API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from channels_plugins.facebook.adapter import FacebookChannel, FacebookConfig
from channels_plugins.facebook.webhook import SIGNATURE_HEADER, sign
from omnidesk.plugins.config import load_config
from omnidesk.plugins.contract import Headers, RawEvent, WebhookRequest

FIXTURES = Path(__file__).parent / "fixtures"
PAGE = "1234567890321"
APP_SECRET = "fb-app-secret"
TOKEN = "EAAB-page-token"
VERIFY_TOKEN = "fb-verify-token"
SECRETS = {"page_access_token": TOKEN, "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN}


def channel(graph_url: str = "https://graph.facebook.com", **settings: Any) -> FacebookChannel:
    config = load_config(FacebookConfig, {"page_id": PAGE, "graph_url": graph_url, **settings}, SECRETS)
    session = requests.Session()
    session.trust_env = False  # 127.0.0.1 only, never a proxy from the environment
    return FacebookChannel(config, account_slug="acme-facebook", session=session)  # type: ignore[arg-type]


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def parse(name_or_body: str | bytes) -> list[Any]:
    body = name_or_body if isinstance(name_or_body, bytes) else fixture(name_or_body)
    return channel().parse(RawEvent(body=body))


def signed(body: bytes, *, secret: str = APP_SECRET) -> WebhookRequest:
    headers = Headers({"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body)})
    return WebhookRequest("POST", "https://desk.example.com/hooks/acme-facebook/", headers, {}, body)


@pytest.fixture
def graph(httpserver: HTTPServer) -> Iterator[HTTPServer]:
    """A fake Graph API on 127.0.0.1 (pytest-httpserver); answers are set per test."""
    yield httpserver
    httpserver.clear()


def graph_error(code: int, message: str, *, subcode: int | None = None, kind: str = "OAuthException",
                transient: bool = False) -> str:
    """An error body exactly as Graph sends it."""
    error: dict[str, Any] = {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEfGh123"}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient:
        error["is_transient"] = True
    return json.dumps({"error": error})


# --- Graph reads of the delivery lookup ------------------------------------------------------------
# Shaped as Graph answers a field-selected edge read: {"data": [...], "paging": {"cursors": {...}, "next": url}},
# times as "2024-03-01T09:30:00+0000", authors as {"name", "id"}.


def graph_time(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")


def by_page(item_id: str, text: str, at: datetime, *, key: str = "message") -> dict[str, Any]:
    """A comment or Messenger message written by the Page, as a lookup reads it."""
    return {"id": item_id, key: text, "from": {"name": "Acme Bikes", "id": PAGE}, "created_time": graph_time(at)}


def by_person(item_id: str, text: str, at: datetime) -> dict[str, Any]:
    return {"id": item_id, "message": text, "from": {"name": "Rosa Parks", "id": "5550001112223"},
            "created_time": graph_time(at)}


def serve_pages(graph: HTTPServer, path: str, *pages: list[dict[str, Any]]) -> None:
    """GET `path` answers `pages` in turn, chained by Graph's `after` cursor and `paging.next`."""

    def handler(request: Request) -> Response:
        n = int(request.args.get("after", "cursor-0").removeprefix("cursor-"))
        body: dict[str, Any] = {"data": pages[n] if n < len(pages) else []}
        if n + 1 < len(pages):
            body["paging"] = {"cursors": {"before": f"cursor-{n}", "after": f"cursor-{n + 1}"},
                              "next": f"https://graph.facebook.com{path}?after=cursor-{n + 1}"}
        return Response(json.dumps(body), content_type="application/json")

    graph.expect_request(path, method="GET").respond_with_handler(handler)
