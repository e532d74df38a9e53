"""People, accounts and tickets for the API tests. Tickets are made by the real pipeline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from omnidesk.inbox.services import inbound_events_apply
from omnidesk.plugins.services import channel_account_save
from omnidesk.routing.models import Agent, Group
from omnidesk.tickets.models import Ticket
from tests.conftest import api_body

CALLBACK = "http://127.0.0.1:9/"


def _user(django_user_model: Any, username: str, *, role: str | None, groups: tuple[Group, ...] = ()) -> Any:
    user = django_user_model.objects.create_user(username=username, password="pw-" + username)
    if role is not None:
        agent = Agent.objects.create(user=user, role=role)
        agent.groups.set(groups)
    return user


@pytest.fixture(autouse=True)
def fast_passwords(settings):  # type: ignore[no-untyped-def]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def support(db) -> Group:  # type: ignore[no-untyped-def]
    return Group.objects.get_or_create(name="Support")[0]


@pytest.fixture
def billing(db) -> Group:  # type: ignore[no-untyped-def]
    return Group.objects.get_or_create(name="Billing")[0]


@pytest.fixture
def manager(django_user_model, support) -> Any:  # type: ignore[no-untyped-def]
    return _user(django_user_model, "meg", role="manager")


@pytest.fixture
def agent(django_user_model, support) -> Any:  # type: ignore[no-untyped-def]
    """An agent of the Support group only."""
    return _user(django_user_model, "sam", role="agent", groups=(support,))


@pytest.fixture
def outsider(django_user_model, db) -> Any:  # type: ignore[no-untyped-def]
    """A logged-in user with no agent profile."""
    return _user(django_user_model, "olly", role=None)


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def sending_account(api_account):  # type: ignore[no-untyped-def]
    """The Support group's API account, able to reply (the callback itself is never reached)."""
    return channel_account_save(
        kind="api", slug=api_account.slug, name=api_account.name, config={"callback_url": CALLBACK},
        default_group_id=api_account.default_group_id, account=api_account,
    )


@pytest.fixture
def billing_account(billing):  # type: ignore[no-untyped-def]
    return channel_account_save(
        kind="api", slug="billing-api", name="Billing widget", config={"callback_url": CALLBACK},
        secrets={"secret": "s3cret"}, default_group_id=billing.pk,
    )


@pytest.fixture
def deliver(post_hook) -> Callable[..., Ticket]:  # type: ignore[no-untyped-def]
    """Post a signed message to an account's webhook, apply it, and return its ticket."""

    def deliver(slug: str = "acme-api", **payload: Any) -> Ticket:
        response = post_hook(slug, api_body(**payload))
        assert response.status_code == 200, response.content
        report = inbound_events_apply()
        assert report.failed == 0, report
        return Ticket.objects.get(messages__account__slug=slug, messages__external_id=payload.get("id", "m-1"))

    return deliver
