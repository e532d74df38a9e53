"""Inputs the fuzzers found, kept as plain tests: each was a 500, a crash or an HTML answer before its fix."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from channels_plugins.phone.adapter import PhoneConfig
from omnidesk.plugins.config import load_config
from omnidesk.plugins.contract import Invalid, RawEvent
from omnidesk.plugins.errors import ConfigInvalid
from tests.plugins.facebook import test_conformance as facebook_kit

from .conftest import Desk


def manager_client(desk: Desk) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {desk.tokens['manager']}")
    return client


@pytest.mark.django_db
def test_a_rule_whose_actions_are_not_a_list_is_a_400_with_readable_problems(desk: Desk) -> None:
    response = manager_client(desk).post("/api/v1/routing/rules/", {"name": "x", "events": [], "actions": 0.5}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid" and "actions: a non-empty list" in body["detail"]
    assert "ErrorDetail" not in body["detail"] and not body["detail"].startswith("[")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/routing/rules/0.5/", "/api/v1/nothing-here/", "/api/v1/channel-accounts/a%0Ab/calls/import/"])
def test_any_method_on_an_unknown_api_path_is_a_json_404(desk: Desk, path: str) -> None:
    client = APIClient(enforce_csrf_checks=True)  # as a real client: the CSRF middleware used to answer a POST in HTML
    for method in ("get", "post", "patch", "delete"):
        response = getattr(client, method)(path, HTTP_AUTHORIZATION=f"Token {desk.tokens['agent']}")
        assert response.status_code == 404, (method, response.status_code)
        assert response.json()["error"] == "not_found", (method, response.content[:200])


def test_a_regex_too_large_to_compile_is_a_config_error() -> None:
    with pytest.raises(ConfigInvalid, match="internal_pattern"):
        load_config(PhoneConfig, {"internal_pattern": "a{99999999999}"}, {})


def test_a_feed_item_that_is_an_object_is_one_invalid_event() -> None:
    plugin = facebook_kit.TestFacebookConformance().make_plugin()
    body = {"object": "page", "entry": [{"id": "1", "time": 1, "changes": [
        {"field": "feed", "value": {"item": {"x": 1}, "verb": "add", "post_id": "1_2"}},
        {"field": "feed", "value": {"item": "status", "verb": ["add"], "post_id": "1_3"}},
    ]}]}
    items = plugin.parse(RawEvent(body=json.dumps(body).encode()))
    assert items == [
        Invalid("entry[0].changes[0]", "entry[0].changes[0].value.item: must be text, got dict"),
        Invalid("entry[0].changes[1]", "entry[0].changes[1].value.verb: must be text, got list"),
    ]
