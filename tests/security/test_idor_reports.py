"""Reports as an attacker: another group's figures, drill-down and CSV are 404 like a missing group."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client

from tests.api.conftest import client_for

pytestmark = pytest.mark.django_db

REPORT = "/api/v1/reports/parity/"
DRILL = "/api/v1/reports/parity/tickets/"


def _volumes(response) -> dict[str, int]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content
    assert response["Content-Disposition"].startswith("attachment")
    return {row["channel"]: int(row["volume"]) for row in csv.DictReader(io.StringIO(response.content.decode()))}


def test_report_drill_down_and_csv_count_only_ones_own_groups(agent, manager, own, victim) -> None:  # type: ignore[no-untyped-def]
    assert _volumes(client_for(manager).get(REPORT, {"format": "csv"}))["api"] == 2  # the control: both tickets
    assert _volumes(client_for(agent).get(REPORT, {"format": "csv"}))["api"] == 1
    client = client_for(agent)
    drilled = client.get(DRILL, {"metric": "volume", "channel": "all"})
    assert [t["id"] for t in drilled.json()["results"]] == [own.pk]
    drilled_csv = client.get(DRILL, {"metric": "unanswered", "format": "csv"}).content.decode()
    assert str(victim.ticket.pk) not in drilled_csv.split() and str(own.pk) in drilled_csv


def test_another_groups_report_is_404_like_a_missing_group(agent, own, victim) -> None:  # type: ignore[no-untyped-def]
    client = client_for(agent)
    theirs, missing = str(victim.ticket.group_id), str(victim.ticket.group_id + 1000)
    for url, extra in ((REPORT, {}), (REPORT, {"format": "csv"}), (DRILL, {"metric": "volume"}),
                       (DRILL, {"metric": "volume", "format": "csv"})):
        for group in (theirs, "Billing"):
            response = client.get(url, {"group": group, **extra})
            control = client.get(url, {"group": missing, **extra})
            assert response.status_code == control.status_code == 404, (url, extra, group, response.content)
            assert response.content.replace(group.encode(), b"G") == control.content.replace(missing.encode(), b"G")
    page = Client()
    page.force_login(agent)
    assert page.get("/reports/parity/", {"group": theirs}).status_code == 404
    assert page.get("/reports/parity/", {"group": "Billing"}).status_code == 404
    own_page = page.get("/reports/parity/")
    assert own_page.status_code == 200 and "Billing" not in own_page.content.decode()
