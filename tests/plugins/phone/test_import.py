"""`manage.py import_calls` and the API upload: every layout, idempotence, bad rows, fixed files."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from omnidesk.inbox.models import InboundEvent
from omnidesk.routing.models import Agent
from omnidesk.tickets.models import Message, Ticket

from .conftest import account_with
from .test_cdr import FILES, FIXTURES, LAYOUTS

pytestmark = pytest.mark.django_db
MASTER = FIXTURES / "cdr__asterisk_master_csv.csv"


def run(path: Path, slug: str = "acme-phone", *extra: str) -> tuple[dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_calls", str(path), "--account", slug, "--json", *extra, stdout=out, stderr=err)
    return json.loads(out.getvalue().strip().splitlines()[-1]), err.getvalue()


def test_master_csv_import_twice_adds_nothing_the_second_time(phone_account, tmp_path) -> None:  # type: ignore[no-untyped-def]
    account_with(phone_account, chunk_rows=4)
    first, progress = run(MASTER)
    assert "[" in progress and "4/4 chunks" in progress
    assert first["rows"] == 14 and first["imported"] == 6 and first["duplicates"] == 0
    assert first["ignored_by_reason"] == {"anonymous": 1, "internal": 1, "outbound": 1}
    assert [r["where"] for r in first["invalid_rows"]] == ["line 9", "line 10", "line 11", "line 12"]
    assert first["chunks"] == first["chunks_new"] == 4
    missed = Message.objects.filter(event_type="missed_call")
    assert missed.count() == 4 and all(m.metadata["needs_callback"] == "true" for m in missed)
    assert Ticket.objects.count() == 6
    events = InboundEvent.objects.count()

    second, _ = run(MASTER)
    assert second["imported"] == 0 and second["duplicates"] == 6 and second["chunks_new"] == 0
    assert second["invalid"] == 4  # still reported: the file still has them
    assert InboundEvent.objects.count() == events and Message.objects.count() == 6


def test_fixed_file_imports_only_what_was_missing(phone_account, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run(MASTER)
    fixed = tmp_path / "Master.csv"
    text = MASTER.read_text()
    text = text.replace('"2024-07-01 25:61:00"', '"2024-07-01 09:59:40"').replace('"MAYBE"', '"NO ANSWER"')
    fixed.write_text(text)
    again, _ = run(fixed)
    assert again["imported"] == 2 and again["duplicates"] == 6
    assert [r["where"] for r in again["invalid_rows"]] == ["line 9", "line 12"]
    assert Message.objects.filter(external_id__in=["1719824400.15", "1719824700.17"]).count() == 2


def test_human_summary_and_errors(phone_account, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    call_command("import_calls", str(MASTER), "--account", "acme-phone", "--no-progress", stdout=out)
    text = out.getvalue()
    assert "14 row(s) read" in text and "imported:   6" in text
    assert "line 11: disposition: 'MAYBE' is not one of" in text
    with pytest.raises(CommandError, match="no channel account 'nope'"):
        call_command("import_calls", str(MASTER), "--account", "nope")
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_calls", str(tmp_path / "missing.csv"), "--account", "acme-phone")
    junk = tmp_path / "junk.csv"
    junk.write_text("just,some\nnonsense,here\n")
    with pytest.raises(CommandError, match="no row"):
        call_command("import_calls", str(junk), "--account", "acme-phone", stdout=io.StringIO(), stderr=io.StringIO())


def test_api_account_cannot_import(api_account, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match="does not import files"):
        call_command("import_calls", str(MASTER), "--account", api_account.slug)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_layout_imports(name: str, phone_account) -> None:  # type: ignore[no-untyped-def]
    account_with(phone_account, **LAYOUTS[name])
    summary, _ = run(FILES / name)
    expected = {"asterisk_custom_legacy.csv": (2, 1), "asterisk_custom_advanced.csv": (2, 0),
                "freeswitch_example.csv": (3, 1), "freeswitch_sql.csv": (2, 0), "generic_export.csv": (2, 3)}[name]
    assert (summary["imported"], summary["invalid"]) == expected
    again, _ = run(FILES / name)
    assert again["imported"] == 0 and again["duplicates"] == expected[0]


@pytest.mark.urls("tests.plugins.phone.urls_for_tests")
def test_api_upload_multipart_and_raw(phone_account, django_user_model) -> None:  # type: ignore[no-untyped-def]
    url = "/api/v1/channel-accounts/acme-phone/calls/import/"
    agent = django_user_model.objects.create_user(username="sam")
    Agent.objects.create(user=agent, role="agent").groups.add(phone_account.default_group)  # agents: their groups' accounts
    client = APIClient()
    client.force_authenticate(agent)
    with MASTER.open("rb") as fh:
        answer = client.post(url, {"file": fh}, format="multipart")
    assert answer.status_code == 200, answer.content
    assert answer.json()["imported"] == 6 and answer.json()["invalid"] == 4
    raw = client.generic("POST", url, MASTER.read_bytes(), content_type="text/csv")
    assert raw.status_code == 200 and raw.json()["imported"] == 0 and raw.json()["duplicates"] == 6

    assert client.post(url, {}, format="multipart").json()["error"] == "no_file"
    missing = client.generic("POST", "/api/v1/channel-accounts/nope/calls/import/", b"x", content_type="text/csv")
    assert missing.status_code == 404 and set(missing.json()) == {"error", "detail"}
    empty = client.generic("POST", url, b"\n", content_type="text/csv")
    assert empty.status_code == 400 and empty.json()["error"] == "import_refused"

    outsider = django_user_model.objects.create_user(username="olly")
    client.force_authenticate(outsider)
    assert client.generic("POST", url, MASTER.read_bytes(), content_type="text/csv").status_code == 403
