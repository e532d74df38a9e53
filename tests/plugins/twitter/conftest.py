"""Fixtures of the X plugin's tests: a fake X API on 127.0.0.1, an account pointed at it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from channels_plugins.twitter.adapter import TwitterChannel, TwitterConfig
from channels_plugins.twitter.webhook import sign
from omnidesk.plugins.config import load_config

from .fakex import OWN_ID, FakeX

CONSUMER_SECRET = "x-consumer-secret"
SECRETS = {
    "consumer_key": "x-consumer-key",
    "consumer_secret": CONSUMER_SECRET,
    "access_token": "x-access-token",
    "access_token_secret": "x-access-token-secret",
}


@pytest.fixture
def fake_x(httpserver) -> FakeX:  # type: ignore[no-untyped-def]
    return FakeX(httpserver)


def account_settings(fake: FakeX, **changes: Any) -> dict[str, Any]:
    return {"user_id": OWN_ID, "username": "TweepyDev", "api_base_url": fake.url, "timeout_s": 5.0, **changes}


@pytest.fixture
def make_plugin(fake_x: FakeX) -> Callable[..., TwitterChannel]:
    """A plugin instance talking to the fake X API (no database needed)."""

    def make(**changes: Any) -> TwitterChannel:
        config = load_config(TwitterConfig, account_settings(fake_x, **changes), SECRETS)
        return TwitterChannel(config, account_slug="acme-x")  # type: ignore[arg-type]

    return make


@pytest.fixture
def twitter_account(db, fake_x):  # type: ignore[no-untyped-def]
    """An enabled X account 'acme-x' whose API is the fake one."""
    from omnidesk.plugins.services import channel_account_save
    from omnidesk.routing.models import Group

    group = Group.objects.get_or_create(name="Support")[0]
    return channel_account_save(
        kind="twitter", slug="acme-x", name="Acme on X", config=account_settings(fake_x), secrets=SECRETS,
        default_group_id=group.pk,
    )


@pytest.fixture
def post_x_hook(client) -> Callable[..., Any]:  # type: ignore[no-untyped-def]
    """POST an Account Activity body to /hooks/<slug>/, signed as X signs it unless signature= is given."""

    def post(slug: str, body: bytes, *, signature: str | None = None) -> Any:
        headers = {"HTTP_X_TWITTER_WEBHOOKS_SIGNATURE": signature if signature is not None else sign(CONSUMER_SECRET, body)}
        return client.generic("POST", f"/hooks/{slug}/", body, content_type="application/json", **headers)

    return post
