"""API (JSON, CSV, drill-down), who sees what, the manager page and the management command."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command

from omnidesk.tickets.replies import reply_create
from omnidesk.tickets.services import ticket_update
from tests.api.conftest import client_for
from tests.conftest import api_body

from .builders import Spec, build

Q = "since=2025-03-01&until=2025-04-01"


@pytest.fixture
def two_groups(support, billing):  # type: ignore[no-untyped-def]
    mine = [build(Spec("email", support, fr=60, frb=60, fr_met=True)) for _ in range(2)]
    theirs = [build(Spec("twitter", billing, fr=600, frb=600, fr_met=False, public=True)) for _ in range(3)]
    return mine, theirs


def test_manager_sees_every_group_agent_only_theirs(manager, agent, two_groups):  # type: ignore[no-untyped-def]
    mine, theirs = two_groups
    everything = client_for(manager).get(f"/api/v1/reports/parity/?{Q}").json()
    assert everything["pooled"]["volume"] == 5
    assert [c["channel"] for c in everything["channels"]] == ["email", "twitter"]
    own = client_for(agent).get(f"/api/v1/reports/parity/?{Q}").json()
    assert own["pooled"]["volume"] == 2 and [c["channel"] for c in own["channels"]] == ["email"]
    drill = client_for(agent).get(f"/api/v1/reports/parity/tickets/?{Q}&metric=volume").json()
    assert {t["id"] for t in drill["results"]} == {t.pk for t in mine}
    drill = client_for(agent).get(f"/api/v1/reports/parity/tickets/?{Q}&metric=volume&channel=twitter").json()
    assert drill["count"] == 0
    for url in (f"/api/v1/reports/parity/?{Q}&group=Billing", f"/api/v1/reports/parity/tickets/?{Q}&group=Billing"):
        denied = client_for(agent).get(url)
        assert denied.status_code == 404 and denied.json()["error"] == "group_not_found"
    billing_only = client_for(manager).get(f"/api/v1/reports/parity/tickets/?{Q}&group=Billing&metric=sla_first_response_missed")
    assert {t["id"] for t in billing_only.json()["results"]} == {t.pk for t in theirs}


def test_outsider_and_anonymous_are_refused(outsider, client, two_groups):  # type: ignore[no-untyped-def]
    assert client_for(outsider).get(f"/api/v1/reports/parity/?{Q}").status_code == 403
    assert client.get(f"/api/v1/reports/parity/?{Q}").status_code in (401, 403)
    assert client.get(f"/reports/parity/?{Q}").status_code == 302  # to the login page


def test_bad_input_is_a_clear_400(manager):  # type: ignore[no-untyped-def]
    r = client_for(manager).get("/api/v1/reports/parity/?since=yesterday")
    assert r.status_code == 400 and "YYYY-MM-DD" in r.json()["detail"]
    r = client_for(manager).get(f"/api/v1/reports/parity/tickets/?{Q}&metric=nonsense")
    assert r.status_code == 400 and r.json()["error"] == "invalid_report_input"
    r = client_for(manager).get(f"/api/v1/reports/parity/?{Q}&alpha=2")
    assert r.status_code == 400


def test_csv_export(manager, two_groups):  # type: ignore[no-untyped-def]
    r = client_for(manager).get(f"/api/v1/reports/parity/?{Q}&format=csv")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode())))
    assert [row["channel"] for row in rows] == ["email", "twitter", "all"]
    assert rows[0]["volume"] == "2" and rows[1]["sla_first_response"] == "0.0" and rows[2]["first_response_p50_s"] == "600.0"
    assert rows[1]["sla_first_response_vs_best"] == "small_sample"


def test_page_renders_svg_definitions_and_drilldown_links(manager, agent, client, two_groups):  # type: ignore[no-untyped-def]
    client.force_login(manager)
    r = client.get(f"/reports/parity/?{Q}")
    body = r.content.decode()
    assert r.status_code == 200
    assert body.count("<svg") >= 3 and "Wilson 95% CI" in body
    assert "/api/v1/reports/parity/tickets/?since=2025-03-01&amp;until=2025-04-01&amp;channel=twitter&amp;metric=unanswered" in body
    assert "Definitions" in body and "percentile_cont" in body and "sample too small" in body
    assert "reports/parity.css" in body and "cdn" not in body.lower() and "<script" not in body
    client.force_login(agent)
    page = client.get(f"/reports/parity/?{Q}").content.decode()
    assert "twitter" not in page.split("<h2>Definitions")[0].split("</form>")[1]
    assert client.get(f"/reports/parity/?{Q}&group=Billing").status_code == 404


def test_command_writes_csv_png_and_summary(two_groups, tmp_path, capsys):  # type: ignore[no-untyped-def]
    out_csv, out_png = tmp_path / "p.csv", tmp_path / "p.png"
    call_command("parity_report", "--since", "2025-03-01", "--until", "2025-04-01", "--csv", str(out_csv), "--png", str(out_png))
    summary = capsys.readouterr().out
    assert "email" in summary and "twitter" in summary and "all" in summary
    assert out_csv.read_text().splitlines()[0].startswith("channel,volume,share_answered")
    assert len(out_csv.read_text().splitlines()) == 4
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out_png.stat().st_size > 5000
    call_command("parity_report", "--since", "2025-03-01", "--until", "2025-04-01", "--group", "Billing", "--json")
    report = json.loads(capsys.readouterr().out)
    assert report["pooled"]["volume"] == 3
    with pytest.raises(CommandError, match="no group"):
        call_command("parity_report", "--since", "2025-03-01", "--until", "2025-04-01", "--group", "Nope")


def test_report_on_tickets_made_by_the_real_pipeline(deliver, sending_account, manager, agent, support, billing):  # type: ignore[no-untyped-def]
    """Webhook → ingest → reply → reassign → solve → the customer writes again (reopen)."""
    answered = deliver(id="m-1", thread="t-1", author={"id": "u-1", "name": "Ada", "email": "ada@example.com"})
    deliver(id="m-2", thread="t-2", author={"id": "u-2", "name": "Bob", "email": "bob@example.com"})
    reply_create(ticket=answered, user=agent, text="On it.")
    ticket_update(ticket=answered, user=manager, assignee=agent)  # the first assignment: not a transfer
    ticket_update(ticket=answered, user=manager, assignee=manager)  # a transfer
    ticket_update(ticket=answered, user=manager, status="solved")
    deliver(id="m-3", thread="t-1", author={"id": "u-1", "name": "Ada", "email": "ada@example.com"}, text="Still broken")
    answered.refresh_from_db()
    assert answered.reopen_count == 1
    sent = json.loads(api_body())["sent_at"][:10]
    from datetime import date, timedelta

    since, until = sent, (date.fromisoformat(sent) + timedelta(days=1)).isoformat()
    report = client_for(manager).get(f"/api/v1/reports/parity/?since={since}&until={until}").json()
    api = report["channels"][0]
    assert api["channel"] == "api" and api["volume"] == 2
    assert (api["share_answered"]["x"], api["share_answered"]["n"]) == (1, 2)
    assert (api["reopen_rate"]["x"], api["transfers_per_ticket"]["transfers"]) == (1, 1)
    expected = (answered.first_response_at - answered.customer_first_message_at).total_seconds()
    assert api["first_response"]["p50"] == pytest.approx(expected, abs=1e-6)
    assert api["first_response"]["n"] == 1
    # the second customer message came after the first response; no agent answered it yet
    assert api["next_response"]["n"] == 0
    assert api["ingest_lag"]["n"] == 3
    drill = client_for(manager).get(f"/api/v1/reports/parity/tickets/?since={since}&until={until}&metric=transferred").json()
    assert [t["id"] for t in drill["results"]] == [answered.pk]
