"""Customers, token auth, the browsable root, JSON 404s and the OpenAPI schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from .conftest import client_for

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def two_customers(api_account, billing_account, deliver):  # type: ignore[no-untyped-def]
    ada = deliver("acme-api", id="a-1").customer
    bob = deliver("billing-api", id="b-1", author={"id": "u-9", "name": "Bob", "phone": "+44 20 7946 0958"}).customer
    return ada, bob


def test_agent_sees_customers_of_their_groups_only(agent, manager, two_customers):
    ada, bob = two_customers
    mine = client_for(agent).get("/api/v1/customers/").json()["results"]
    assert [c["id"] for c in mine] == [ada.pk]
    everyone = client_for(manager).get("/api/v1/customers/").json()["results"]
    assert {c["id"] for c in everyone} == {ada.pk, bob.pk}
    assert client_for(agent).get(f"/api/v1/customers/{bob.pk}/").status_code == 404


def test_customer_detail_lists_identities(manager, two_customers):
    _, bob = two_customers
    body = client_for(manager).get(f"/api/v1/customers/{bob.pk}/").json()
    assert body["display_name"] == "Bob"
    kinds = {i["kind"]: i for i in body["identities"]}
    assert kinds["phone"]["value"] == "+442079460958"
    assert kinds["external"]["namespace"] == "billing-api" and kinds["external"]["undeliverable"] is False
    assert {"followers", "verified", "display_name"} <= set(kinds["external"])


def test_customer_search(manager, two_customers):
    ada, _ = two_customers
    found = client_for(manager).get("/api/v1/customers/?search=ada@example").json()["results"]
    assert [c["id"] for c in found] == [ada.pk]


def test_drf_create_token_authenticates(agent, capsys):
    call_command("drf_create_token", agent.username)
    token = Token.objects.get(user=agent)
    assert token.key in capsys.readouterr().out
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert client.get("/api/v1/tickets/").status_code == 200
    client.credentials(HTTP_AUTHORIZATION="Token wrong")
    bad = client.get("/api/v1/tickets/")
    assert bad.status_code == 401 and bad.json() == {"error": "authentication_failed", "detail": "Invalid token."}


def test_session_login_works(agent):
    client = APIClient()
    assert client.login(username="sam", password="pw-sam")
    assert client.get("/api/v1/tickets/").status_code == 200


def test_root_lists_every_endpoint(agent):
    body = client_for(agent).get("/api/v1/").json()
    assert set(body) == {
        "health", "channels", "channel-accounts", "tickets", "customers", "sla/policies", "sla/calendars", "schema",
        "routing/rules", "routing/presence", "queue",
        "reports/parity", "incidents",
    }
    assert body["tickets"].endswith("/api/v1/tickets/")


def test_unknown_paths_answer_json(agent):
    client = client_for(agent)
    missing = client.get("/api/v1/nothing-here/")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    slashless = client.get("/api/v1/tickets")
    assert slashless.status_code == 404 and slashless.json()["detail"] == "add a trailing slash: /api/v1/tickets/"


def test_schema_is_served(agent):
    response = client_for(agent).get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/tickets/{id}/replies/" in paths and "/api/v1/health/" in paths


def test_schema_generates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    done = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "/api/v1/channel-accounts/{slug}/" in out.read_text()


def test_browsable_pages_render_and_never_show_a_secret(admin_user, api_account):
    client = APIClient()
    client.force_login(admin_user)
    for url in ("/api/v1/", "/api/v1/tickets/", "/api/v1/channel-accounts/", "/api/v1/channel-accounts/acme-api/",
                "/api/v1/channels/", "/api/v1/health/", "/api/v1/customers/"):
        page = client.get(url, HTTP_ACCEPT="text/html")
        assert page.status_code == 200, url
        assert "s3cret" not in page.content.decode()


def test_call_import_is_mounted_in_the_real_urlconf(agent):
    response = client_for(agent).generic(
        "POST", "/api/v1/channel-accounts/nope/calls/import/", b"x", content_type="text/csv"
    )
    assert response.status_code == 404
    assert not response.json()["detail"].startswith("there is no API endpoint")  # the view answered, not the catch-all
