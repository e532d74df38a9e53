"""What the fuzz tests share: a seeded desk whose API is called through the real WSGI application."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from tests.conftest import api_body

#: OMNIDESK_FUZZ_DEEP=1: ten times the examples (and schemathesis' coverage phase), for a long run by hand
DEEP = os.environ.get("OMNIDESK_FUZZ_DEEP") == "1"
#: every fuzz test is reproducible: same examples on every run, no example database on disk
FUZZ = dict(derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=examples * (10 if DEEP else 1), **FUZZ)


@dataclass
class Desk:
    """Tokens of an agent and a manager, and ids of real rows for path parameters."""

    tokens: dict[str, str]
    ids: dict[str, list[Any]] = field(default_factory=dict)


@pytest.fixture
def desk(db, api_account, post_hook, settings) -> Desk:  # type: ignore[no-untyped-def]
    """An agent of Support and a manager, a ticket made by the real pipeline, an SLA calendar, policy and rule."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from omnidesk.customers.models import Customer
    from omnidesk.inbox.services import inbound_events_apply
    from omnidesk.routing.models import Agent
    from omnidesk.tickets.models import Ticket

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    users = {}
    for role in ("agent", "manager"):
        user = get_user_model().objects.create_user(username=f"fuzz-{role}", password="pw")
        Agent.objects.create(user=user, role=role).groups.set([api_account.default_group])
        users[role] = user
    for n in range(2):
        assert post_hook("acme-api", api_body(id=f"fuzz-{n}", thread=f"fuzz-t{n}")).status_code == 200
    assert inbound_events_apply().failed == 0
    manager = APIClient()
    manager.force_authenticate(users["manager"])
    made = {
        "calendars": manager.post("/api/v1/sla/calendars/", {"name": "Fuzz", "timezone": "UTC", "hours": {"mon": [["09:00", "17:00"]]}}, format="json"),
        "rules": manager.post(
            "/api/v1/routing/rules/",
            {"name": "Fuzz", "events": ["customer_message"], "conditions": [{"field": "text", "op": "contains", "value": "x"}],
             "actions": [{"type": "set_priority", "value": "high"}]},
            format="json",
        ),
    }
    made["policies"] = manager.post(
        "/api/v1/sla/policies/", {"name": "Fuzz", "calendar": made["calendars"].json()["id"], "targets": {"normal": {"first_response": 30}}}, format="json"
    )
    for name, response in made.items():
        assert response.status_code == 201, (name, response.content)
    return Desk(
        tokens={role: Token.objects.create(user=user).key for role, user in users.items()},
        ids={
            "tickets": list(Ticket.objects.values_list("pk", flat=True)),
            "customers": list(Customer.objects.values_list("pk", flat=True)),
            "channel-accounts": [api_account.slug],
            **{name: [response.json()["id"]] for name, response in made.items()},
        },
    )


@pytest.fixture
def wsgi_desk(desk: Desk) -> Iterator[Desk]:
    """The desk, for requests through the WSGI handler, which must not close the test's connection.

    Django's test Client disconnects the same signal around each request (and reconnects it after),
    so this comes after every request the seeding made through the test Client.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield desk
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)

