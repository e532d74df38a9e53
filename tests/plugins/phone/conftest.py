"""Helpers for the phone channel's tests: a plugin from settings, a phone account, signed CTI posts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from channels_plugins.phone.adapter import SIGNATURE_HEADER, sign

from .helpers import BASE, SECRET, TWILIO_TOKEN

@pytest.fixture
def phone_account(db):  # type: ignore[no-untyped-def]
    """An enabled phone account 'acme-phone' (GB numbers, London time), CTI secret and Twilio token set."""
    from omnidesk.plugins.services import channel_account_save
    from omnidesk.routing.models import Group

    group = Group.objects.get_or_create(name="Support")[0]
    return channel_account_save(
        kind="phone", slug="acme-phone", name="Acme phone line", config=dict(BASE),
        secrets={"secret": SECRET, "twilio_auth_token": TWILIO_TOKEN}, default_group_id=group.pk, default_region="GB",
    )


def account_with(account: Any, **config: Any) -> Any:
    from omnidesk.plugins.services import channel_account_save

    return channel_account_save(
        kind="phone", slug=account.slug, name=account.name, config={**BASE, **config},
        default_group_id=account.default_group_id, default_region="GB", account=account,
    )


@pytest.fixture
def post_cti(client) -> Callable[..., Any]:  # type: ignore[no-untyped-def]
    """POST a CTI event (a dict) to /hooks/<slug>/, signed with the account's secret."""

    def post(payload: dict[str, Any], *, slug: str = "acme-phone", secret: str = SECRET) -> Any:
        body = json.dumps(payload).encode()
        return client.generic("POST", f"/hooks/{slug}/", body, content_type="application/json",
                              **{"HTTP_" + SIGNATURE_HEADER.upper().replace("-", "_"): sign(secret, body)})

    return post
