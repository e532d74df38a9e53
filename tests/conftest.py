"""Shared fixtures. Tests needing a real service fail in CI (OMNIDESK_REQUIRE_SERVICES=1) and skip elsewhere."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import pytest

from channels_plugins.api.client import sign

REQUIRE_SERVICES = os.environ.get("OMNIDESK_REQUIRE_SERVICES") == "1"
SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared")


def need(reason_missing: str | None) -> None:
    """Fail (in CI) or skip (elsewhere) when a real service a test needs is missing."""
    if reason_missing is None:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {reason_missing}")
    pytest.skip(reason_missing)


@contextmanager
def statements_sent() -> Iterator[list[str]]:
    """The SQL of every statement the default connection runs in the block, as sent. Django's query log
    (CaptureQueriesContext) records a prepared statement without its text (omnidesk/rows.py prepares the
    fixed-shape statements of the busiest paths); an execute wrapper sees every one. An executemany is one."""
    from django.db import connection

    seen: list[str] = []

    def record(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield seen


def reachable(url: str) -> bool:
    parsed = urlparse(url)
    default_port = {"redis": 6379, "amqp": 5672, "postgres": 5432, "postgresql": 5432}.get(parsed.scheme, 0)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def _nudges_drained() -> Iterator[None]:
    """Nudges leave from a background thread: one a test left in flight must not land in the next."""
    yield
    from omnidesk.broker import nudges_drain

    nudges_drain()


@pytest.fixture
def media_root(settings, tmp_path):  # type: ignore[no-untyped-def]
    """Files the test stores (attachments) go to its own directory, not the checkout's media/."""
    settings.MEDIA_ROOT = str(tmp_path)
    return tmp_path


@pytest.fixture
def postgres(settings) -> None:  # type: ignore[no-untyped-def]
    """The test runs on PostgreSQL (DATABASE_URL) or is skipped/failed."""
    from django.db import connection

    need(None if connection.vendor == "postgresql" else "needs PostgreSQL: set DATABASE_URL=postgres://...")


@pytest.fixture
def broker_url() -> str:
    """A real dramatiq broker (OMNIDESK_TEST_BROKER_URL: redis:// or amqp://) for worker subprocesses."""
    url = os.environ.get("OMNIDESK_TEST_BROKER_URL", "")
    need(None if url and reachable(url) else "needs a real broker: set OMNIDESK_TEST_BROKER_URL=redis://... or amqp://...")
    return url


@pytest.fixture
def shared_corpus() -> str:
    path = os.path.abspath(os.path.join(SHARED, "corpus"))
    if not os.path.isdir(path):
        pytest.skip(f"../shared/corpus is not beside this checkout ({path})")
    return path


@pytest.fixture
def api_account(db):  # type: ignore[no-untyped-def]
    """An enabled generic-API channel account, slug 'acme-api', secret 's3cret'."""
    from omnidesk.plugins.services import channel_account_save
    from omnidesk.routing.models import Group

    group = Group.objects.get_or_create(name="Support")[0]
    return channel_account_save(
        kind="api", slug="acme-api", name="Acme widget", config={"callback_url": ""},
        secrets={"secret": "s3cret"}, default_group_id=group.pk,
    )


def api_body(**overrides) -> bytes:  # type: ignore[no-untyped-def]
    payload = {
        "id": "m-1",
        "thread": "t-1",
        "author": {"id": "u-1", "name": "Ada Lovelace", "email": "ada@example.com"},
        "text": "My parcel never arrived.",
        # three weeks ago: old enough that SLA deadlines have passed, never "implausibly old"
        "sent_at": (datetime.now(timezone.utc) - timedelta(days=21)).replace(microsecond=0).isoformat(),
    }
    payload.update(overrides)
    return json.dumps(payload).encode()


@pytest.fixture
def post_hook(client) -> Callable[..., object]:  # type: ignore[no-untyped-def]
    """POST a body to /hooks/<slug>/, signed with `secret` unless signature= is given."""

    def post(slug: str, body: bytes, *, secret: str = "s3cret", signature: str | None = None, **extra):  # type: ignore[no-untyped-def]
        headers = {"HTTP_X_OMNIDESK_SIGNATURE": signature if signature is not None else sign(secret, body)}
        headers.update(extra)
        return client.generic("POST", f"/hooks/{slug}/", body, content_type="application/json", **headers)

    return post
