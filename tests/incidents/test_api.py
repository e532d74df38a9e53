"""Incidents over the API and on the pages: scoped counts, manager-only changes, the banner, the report."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from config.asgi import application
from omnidesk.incidents.bulk import bulk_reply_deliver
from omnidesk.incidents.detection import incidents_detect
from omnidesk.incidents.models import Incident
from omnidesk.tickets.replies import reply_create
from omnidesk.workspace import live
from tests.api.conftest import (  # noqa: F401  (pytest fixtures)
    agent, billing, billing_account, client_for, deliver, fast_passwords, manager, outsider, sending_account, support,
)

from .traffic import now_utc

pytestmark = pytest.mark.django_db


@pytest.fixture
def incident(deliver, sending_account, billing_account, manager):  # type: ignore[no-untyped-def]
    """An incident with two Support tickets (one answered) and one Billing ticket."""
    at = now_utc().replace(microsecond=0).isoformat()
    tickets = [
        deliver(id="s-1", thread="s-1", author={"id": "a"}, text="app login broken", sent_at=at),
        deliver(id="s-2", thread="s-2", author={"id": "b"}, text="the app crashes at login", sent_at=at),
        deliver("billing-api", id="b-1", thread="b-1", author={"id": "c"}, text="app login fails", sent_at=at),
    ]
    reply_create(ticket=tickets[0], user=manager, text="Looking into it")
    incidents_detect(settle_s=0)
    response = client_for(manager).post("/api/v1/incidents/", {"title": "App login", "terms": ["app", "login", "crash"]},
                                        format="json")
    assert response.status_code == 201, response.content
    return Incident.objects.get(pk=response.json()["id"])


def test_agents_count_and_see_only_their_groups_tickets(incident, agent, manager) -> None:  # type: ignore[no-untyped-def]
    mine = client_for(agent).get(f"/api/v1/incidents/{incident.pk}/").json()
    assert mine["counts"] == [{"channel": "api", "tickets": 2, "answered": 1, "still_open": 2}]
    assert client_for(agent).get(f"/api/v1/incidents/{incident.pk}/tickets/").json()["count"] == 2
    everyone = client_for(manager).get(f"/api/v1/incidents/{incident.pk}/").json()
    assert everyone["counts"] == [{"channel": "api", "tickets": 3, "answered": 1, "still_open": 3}]
    report = client_for(agent).get(f"/api/v1/incidents/{incident.pk}/report/").json()
    assert report["pooled"]["tickets"] == 2 and report["pooled"]["answered"] == 1
    assert report["pooled"]["response"]["n"] == 1 and report["pooled"]["response"]["p50"] >= 0


def test_suggestions_are_for_managers_and_changes_too(incident, agent, manager, outsider) -> None:  # type: ignore[no-untyped-def]
    Incident.objects.filter(pk=incident.pk).update(status="suggested")
    assert client_for(agent).get(f"/api/v1/incidents/{incident.pk}/").status_code == 404
    assert client_for(agent).get("/api/v1/incidents/").json()["count"] == 0
    assert client_for(outsider).get("/api/v1/incidents/").status_code == 403
    refused = client_for(agent).post(f"/api/v1/incidents/{incident.pk}/confirm/")
    assert refused.status_code == 404  # an agent cannot see a suggestion, let alone confirm it
    assert client_for(manager).post(f"/api/v1/incidents/{incident.pk}/confirm/").json()["status"] == "active"
    denied = client_for(agent).post(f"/api/v1/incidents/{incident.pk}/bulk-reply/", {"text": "Hi"}, format="json")
    assert denied.status_code == 403 and denied.json()["error"] == "permission_denied"
    again = client_for(manager).post(f"/api/v1/incidents/{incident.pk}/confirm/")
    assert again.status_code == 400 and "cannot become active" in again.json()["detail"]


def test_bulk_reply_and_resolve_over_the_api(incident, manager) -> None:  # type: ignore[no-untyped-def]
    client = client_for(manager)
    url = f"/api/v1/incidents/{incident.pk}/"
    first = client.post(url + "bulk-reply/", {"text": "We are on it."}, format="json")
    assert first.status_code == 202 and first.json()["created"] is True
    assert client.post(url + "bulk-reply/", {"text": "We are on it."}, format="json").json()["created"] is False
    assert client.post(url + "bulk-reply/", {"text": ""}, format="json").status_code == 400
    wrong = client.post(url + "bulk-reply/", {"text": "Hi", "kind": "spam"}, format="json")
    assert wrong.status_code == 400 and "kind must be one of" in wrong.json()["detail"]
    assert client.get(url + "bulk-replies/").json()[0]["outcomes"] == {}  # queued for a worker
    bulk_reply_deliver(bulk_id=first.json()["bulk_reply"])  # what the worker does
    bulks = client.get(url + "bulk-replies/").json()
    assert len(bulks) == 1 and bulks[0]["outcomes"] == {"api": {"queued": 3}} and bulks[0]["finished_at"]
    resolved = client.post(url + "resolve/", {"follow_up_text": "Fixed now."}, format="json").json()
    assert resolved["status"] == "resolved" and resolved["follow_up"] is not None
    assert client.post(url + "resolve/", {}, format="json").status_code == 400


def test_the_banner_on_the_queue_and_manager_pages(incident, agent, manager, client) -> None:  # type: ignore[no-untyped-def]
    client.force_login(agent)
    page = client.get("/").content.decode()
    assert 'id="incident-banner"' in page and f"Incident #{incident.pk}: App login" in page
    assert 'data-channel="api">api 2' in page and "incidents/banner.js" in page
    fragment = client.get("/api/v1/incidents/banner/")
    assert fragment.status_code == 200 and fragment["Content-Type"].startswith("text/html")
    assert "api 2" in fragment.content.decode()
    client.force_login(manager)
    assert 'data-channel="api">api 3' in client.get("/manage/").content.decode()
    report = client.get(f"/reports/incidents/{incident.pk}/")
    assert report.status_code == 200 and "Share answered" in report.content.decode()
    assert client.get("/reports/incidents/999999/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_managers_and_teams_hear_when_an_incident_changes(agent) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        socket = WebsocketCommunicator(application, "/ws/queue/", headers=[(b"origin", b"http://127.0.0.1")])
        socket.scope["user"] = agent
        connected, _ = await socket.connect()
        assert connected
        from channels.db import database_sync_to_async

        await database_sync_to_async(live.incidents_changed)({41})
        assert await socket.receive_json_from(timeout=2) == {"event": "incident.changed", "incident": 41}
        await socket.disconnect()

    async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_a_manager_opens_one_by_hand_outside_any_test_transaction(manager) -> None:  # type: ignore[no-untyped-def]
    response = client_for(manager).post("/api/v1/incidents/", {"title": "Card payments declined"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["signature"][:3] == ["card", "payment", "declin"]
    empty = client_for(manager).post("/api/v1/incidents/", {"title": "the and of"}, format="json")
    assert empty.status_code == 400 and "needs words" in empty.json()["detail"]


def test_the_admin_lists_incidents_and_bulk_replies(incident, manager, client, django_user_model) -> None:  # type: ignore[no-untyped-def]
    from omnidesk.incidents.bulk import bulk_reply_create

    bulk, _ = bulk_reply_create(incident=incident, user=manager, text="We are on it.")
    admin = django_user_model.objects.create_superuser("root", password="pw")
    client.force_login(admin)
    for url in ("/admin/incidents/incident/", f"/admin/incidents/incident/{incident.pk}/change/",
                "/admin/incidents/bulkreply/", f"/admin/incidents/bulkreply/{bulk.pk}/change/"):
        response = client.get(url)
        assert response.status_code == 200, url
    assert client.get("/admin/incidents/bulkreply/add/").status_code == 403
