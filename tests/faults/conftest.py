"""Fixtures of the fault tests: the fake platforms, a private Dovecot, an agent who replies."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import need
from tests.plugins.email.dovecot import Dovecot, missing

from .peers import FakePlatforms, SmtpSink
from .traffic import FB_PAGE, X_OWN_ID


@pytest.fixture
def platforms() -> Iterator[FakePlatforms]:
    fake = FakePlatforms(x_user_id=X_OWN_ID, page_id=FB_PAGE)
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def smtp(platforms: FakePlatforms) -> Iterator[SmtpSink]:
    sink = SmtpSink(platforms.deliveries, platforms)
    try:
        yield sink
    finally:
        sink.close()


@pytest.fixture
def dovecot_server() -> Iterator[Dovecot]:
    """A private Dovecot of this test's own: a fault test may restart it."""
    need(missing())
    server = Dovecot.start(fast=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def agent(db):  # type: ignore[no-untyped-def]
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("fault-agent", "agent@desk.example", "pw")
