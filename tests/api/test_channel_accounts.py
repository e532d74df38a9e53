"""/api/v1/channel-accounts/: managers write through the plugin's schema; secrets never come back."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from omnidesk.plugins.models import ChannelAccount
from omnidesk.plugins.services import account_plugin

from .conftest import client_for

pytestmark = pytest.mark.django_db

SECRET = "very-secret-value-7f3a"
NEW = {"kind": "api", "slug": "crm", "name": "CRM", "config": {"callback_url": "https://crm.example/hook"},
       "secrets": {"secret": SECRET}}


def test_manager_creates_an_account_and_the_secret_never_comes_back(manager, support):
    client = client_for(manager)
    texts = []
    created = client.post("/api/v1/channel-accounts/", {**NEW, "default_group": support.pk}, format="json")
    texts.append(created.content.decode())
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secrets_set"] == ["secret"] and "secrets" not in body
    assert body["webhook_path"] == "/hooks/crm/"
    assert body["health"] == {"last_success_at": None, "last_error": "", "last_error_at": None,
                              "needs_reauthorization": False}
    assert body["problem"] is None and body["default_group"] == support.pk
    for url in ("/api/v1/channel-accounts/", "/api/v1/channel-accounts/crm/"):
        response = client.get(url)
        assert response.status_code == 200
        texts.append(response.content.decode())
    renamed = client.patch("/api/v1/channel-accounts/crm/", {"name": "CRM 2"}, format="json")
    texts.append(renamed.content.decode())
    assert renamed.status_code == 200 and renamed.json()["secrets_set"] == ["secret"]
    for text in texts:
        assert SECRET not in text
    account = ChannelAccount.objects.get(slug="crm")
    assert SECRET not in account.secrets_encrypted  # encrypted at rest
    assert account_plugin(account).config.secret.reveal() == SECRET  # kept through the PATCH


def test_secret_can_be_replaced_without_being_shown(manager, api_account):
    client = client_for(manager)
    response = client.patch("/api/v1/channel-accounts/acme-api/", {"secrets": {"secret": "rotated"}}, format="json")
    assert response.status_code == 200, response.content
    assert "rotated" not in response.content.decode()
    assert account_plugin(ChannelAccount.objects.get(slug="acme-api")).config.secret.reveal() == "rotated"


@pytest.mark.parametrize(
    "change, words",
    [
        ({"config": {"callback_url": 42}}, "callback_url: must be text"),
        ({"config": {"colour": "blue"}}, "unknown setting(s): colour"),
        ({"secrets": {}}, "secret: required secret is missing"),
        ({"secrets": {"secret": "x", "token": "y"}}, "unknown secret(s): token"),
    ],
)
def test_bad_config_is_a_400_with_the_plugins_message(manager, change, words):
    response = client_for(manager).post("/api/v1/channel-accounts/", {**NEW, **change}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "config_invalid"
    assert words in response.json()["detail"]
    assert not ChannelAccount.objects.filter(slug="crm").exists()


@pytest.mark.parametrize(
    "change, field",
    [({"kind": "fax"}, "kind"), ({"slug": "no spaces"}, "slug"), ({"config": [1]}, "config"),
     ({"default_region": "Britain"}, "default_region")],
)
def test_malformed_fields_are_a_400_naming_the_field(manager, change, field):
    response = client_for(manager).post("/api/v1/channel-accounts/", {**NEW, **change}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid" and field in body["fields"] and body["detail"].startswith(f"{field}: ")


def test_taken_slug_and_changed_kind_are_refused(manager, api_account):
    client = client_for(manager)
    taken = client.post("/api/v1/channel-accounts/", {**NEW, "slug": "acme-api"}, format="json")
    assert taken.status_code == 400 and "slug" in taken.json()["fields"]
    kind = client.patch("/api/v1/channel-accounts/acme-api/", {"kind": "email"}, format="json")
    assert kind.status_code == 400 and "cannot change" in kind.json()["detail"]


def test_agent_reads_but_cannot_write(agent, api_account):
    client = client_for(agent)
    assert client.get("/api/v1/channel-accounts/").status_code == 200
    assert client.get("/api/v1/channel-accounts/acme-api/").json()["slug"] == "acme-api"
    created = client.post("/api/v1/channel-accounts/", NEW, format="json")
    assert created.status_code == 403
    assert created.json() == {"error": "permission_denied", "detail": "Only managers can change channel accounts."}
    assert client.patch("/api/v1/channel-accounts/acme-api/", {"enabled": False}, format="json").status_code == 403
    assert client.delete("/api/v1/channel-accounts/acme-api/").status_code == 403


def test_outsiders_and_anonymous_get_nothing(outsider, api_account):
    forbidden = client_for(outsider).get("/api/v1/channel-accounts/")
    assert forbidden.status_code == 403 and "agent profile" in forbidden.json()["detail"]
    anonymous = APIClient().get("/api/v1/channel-accounts/")
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "not_authenticated"


def test_delete_unused_account_but_not_one_with_history(manager, api_account, deliver):
    client = client_for(manager)
    client.post("/api/v1/channel-accounts/", NEW, format="json")
    assert client.delete("/api/v1/channel-accounts/crm/").status_code == 204
    deliver()
    response = client.delete("/api/v1/channel-accounts/acme-api/")
    assert response.status_code == 409
    assert "disable it instead" in response.json()["detail"]


def test_unknown_account_is_a_json_404(manager):
    response = client_for(manager).get("/api/v1/channel-accounts/nope/")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "no channel account nope that you can see"}


def test_problem_reports_an_account_whose_plugin_is_gone(manager, api_account):
    ChannelAccount.objects.filter(pk=api_account.pk).update(kind="fax")
    body = client_for(manager).get("/api/v1/channel-accounts/acme-api/").json()
    assert "no channel plugin 'fax' is installed" in body["problem"]
