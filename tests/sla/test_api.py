"""Managers keep policies and calendars through the API and admin; mistakes are named, open tickets follow."""

from datetime import timedelta

import pytest

from omnidesk.sla.models import Calendar, Policy
from omnidesk.sla.services import sla_recompute_open
from tests.api.conftest import client_for

pytestmark = pytest.mark.django_db


def test_agents_read_managers_write(agent, manager):
    assert client_for(agent).get("/api/v1/sla/policies/").status_code == 200
    denied = client_for(agent).post("/api/v1/sla/calendars/", {"name": "x"}, format="json")
    assert denied.status_code == 403
    created = client_for(manager).post(
        "/api/v1/sla/calendars/",
        {"name": "Berlin", "timezone": "Europe/Berlin", "hours": {"mon": [["09:00", "12:00"], ["13:00", "17:00"]]},
         "holiday_country": "DE", "holiday_subdivision": "BY", "closed_dates": ["2026-12-24"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert Calendar.objects.get(name="Berlin").hours["mon"][1] == ["13:00", "17:00"]


def test_every_mistake_in_a_calendar_is_named(manager):
    resp = client_for(manager).post(
        "/api/v1/sla/calendars/",
        {"name": "Bad", "timezone": "Mars/Olympus", "hours": {"mon": [["17:00", "09:00"]], "fun": []},
         "holiday_country": "XX", "closed_dates": ["tomorrow"]},
        format="json",
    )
    assert resp.status_code == 400
    detail = resp.data["detail"]
    for expected in ("not an IANA time zone", "ends before it starts", "'fun' is not one of", "XX/- is not known",
                     "'tomorrow' is not a YYYY-MM-DD date"):
        assert expected in detail


def test_policy_validation_and_ordering(manager):
    bad = client_for(manager).post(
        "/api/v1/sla/policies/",
        {"name": "VIP", "conditions": {"mood": ["angry"]}, "targets": {"normal": {"first_response": -5}},
         "warn_at_percent": 120},
        format="json",
    )
    assert bad.status_code == 400
    assert "'mood' is not one of" in bad.data["detail"] and "positive number of minutes" in bad.data["detail"]
    assert "1 to 99" in bad.data["detail"]
    good = client_for(manager).post(
        "/api/v1/sla/policies/",
        {"name": "VIP", "position": 1, "conditions": {"customer_tags": ["vip"]},
         "targets": {"normal": {"first_response": 30}}, "warn_at_percent": 75},
        format="json",
    )
    assert good.status_code == 201, good.content
    names = [p["name"] for p in client_for(manager).get("/api/v1/sla/policies/").data["results"]]
    assert names.index("VIP") < names.index("Standard")


def test_a_calendar_in_use_cannot_be_deleted(manager):
    cal = Calendar.objects.create(name="Used")
    Policy.objects.create(name="P", calendar=cal, targets={"normal": {"first_response": 60}})
    resp = client_for(manager).delete(f"/api/v1/sla/calendars/{cal.pk}/")
    assert resp.status_code == 409 and "used by a policy" in resp.data["detail"]


def test_a_policy_change_recomputes_open_tickets(manager, api_account, deliver, django_capture_on_commit_callbacks):
    ticket = deliver()
    assert ticket.first_response_due_at == ticket.customer_first_message_at + timedelta(hours=4)
    standard = Policy.objects.get(name="Standard")
    with django_capture_on_commit_callbacks() as callbacks:
        resp = client_for(manager).patch(
            f"/api/v1/sla/policies/{standard.pk}/", {"targets": {"normal": {"first_response": 60}}}, format="json"
        )
    assert resp.status_code == 200 and callbacks  # the recompute is enqueued after commit
    assert sla_recompute_open() == 1
    ticket.refresh_from_db()
    assert (ticket.first_response_due_at - ticket.customer_first_message_at).total_seconds() == 3600


def test_ticket_api_shows_deadlines_and_why(agent, api_account, deliver):
    ticket = deliver()
    data = client_for(agent).get(f"/api/v1/tickets/{ticket.pk}/").data
    assert data["sla"]["policy"] == "Standard" and "no conditions" in data["sla"]["reason"]
    first = data["sla"]["deadlines"]["first_response"]
    assert first["breached"] and first["seconds_left"] < 0


def test_admin_refuses_a_bad_calendar(admin_client):
    resp = admin_client.post(
        "/admin/sla/calendar/add/",
        {"name": "X", "timezone": "Nowhere/City", "hours": '{"mon": [["09:00", "17:00"]]}', "holiday_country": "",
         "holiday_subdivision": "", "closed_dates": "[]"},
    )
    assert resp.status_code == 200 and "not an IANA time zone" in resp.content.decode()
    ok = admin_client.post(
        "/admin/sla/calendar/add/",
        {"name": "UTC days", "timezone": "UTC", "hours": '{"mon": [["09:00", "17:00"]]}', "holiday_country": "",
         "holiday_subdivision": "", "closed_dates": "[]"},
    )
    assert ok.status_code == 302 and Calendar.objects.filter(name="UTC days").exists()
