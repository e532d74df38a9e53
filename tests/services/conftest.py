"""Fixtures for tests against real services (PostgreSQL, Redis, RabbitMQ, real processes)."""

from __future__ import annotations

import os

import pytest

from tests.conftest import need, reachable


@pytest.fixture(params=["redis", "rabbitmq"])
def worker_broker_url(request: pytest.FixtureRequest) -> str:
    """A real broker for worker subprocesses: OMNIDESK_TEST_BROKER_URL, then OMNIDESK_TEST_AMQP_URL."""
    if request.param == "redis":
        return str(request.getfixturevalue("broker_url"))
    url = os.environ.get("OMNIDESK_TEST_AMQP_URL", "")
    need(None if url and reachable(url) else "needs RabbitMQ: set OMNIDESK_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/")
    return url

