"""Shared helpers of the Facebook plugin's tests: a configured channel, signed webhooks, a fake Graph API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer

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
