"""parse_fixture, replay_fixture and startplugin, as plugin authors use them."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from omnidesk.inbox.models import InboundEvent
from omnidesk.tickets.models import Message, Ticket

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "plugins" / "api" / "fixtures"


def run(*args: str) -> tuple[int, str, str]:
    """Run a management command in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def isolated_env(tmp: Path, **extra: str) -> dict[str, str]:
    """A subprocess environment with its own SQLite files (never the suite's test database)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DRAMATIQ_BROKER_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
        OMNIDESK_TEST_SQLITE=str(tmp / "test-db.sqlite3"),
        **extra,
    )
    return env


# --- parse_fixture ---------------------------------------------------------------------


def test_parse_fixture_prints_the_golden_json():
    status, out, err = run(
        "parse_fixture", "api", str(FIXTURES / "message__new_thread.json"), "--config", '{"secret": "s3cret"}'
    )
    assert (status, err) == (0, "")
    items = json.loads(out)
    assert items[0]["type"] == "InboundMessage" and items[0]["external_id"] == "msg-01HF3Z8K2Q"
    # same serializer as the goldens (apart from the account slug the plugin is told)
    golden = json.loads((FIXTURES / "message__new_thread.expected.json").read_text())
    golden[0]["author"]["identity"]["namespace"] = "fixture"
    assert items == golden


def test_parse_fixture_reports_a_plugin_error_in_one_line():
    status, out, err = run("parse_fixture", "api", str(FIXTURES / "malformed__missing_author.json"))
    assert status == 1 and out == ""
    assert err == "error: MalformedPayload: author: required object\n"


@pytest.mark.parametrize(
    ("args", "starts"),
    [
        (["nope", "x.json"], "error: UnknownPlugin: no channel plugin 'nope' is installed"),
        (["api", "/no/such/file.json"], "error: FileNotFoundError: cannot read /no/such/file.json"),
        (
            ["api", str(FIXTURES / "delivery__read.json"), "--config", '{"colour": 1}'],
            "error: ConfigInvalid: ApiConfig: unknown setting(s): colour",
        ),
        (
            ["api", str(FIXTURES / "delivery__read.json"), "--config", "[1"],
            "error: ConfigInvalid: --config is not JSON",
        ),
        (
            [
                "api",
                str(FIXTURES / "delivery__read.json"),
                "--headers",
                str(FIXTURES / "message__public_with_phone.json"),
            ],
            "error: InvalidHeaders:",
        ),
    ],
)
def test_parse_fixture_refuses_bad_arguments_in_one_line(args, starts):
    status, out, err = run("parse_fixture", *args)
    assert status == 1 and err.startswith(starts) and err.count("\n") == 1, err


def test_parse_fixture_from_the_command_line_never_shows_a_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "manage.py", "parse_fixture", "api", str(FIXTURES / "malformed__truncated_json.json")],
        cwd=ROOT,
        env=isolated_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    # (log lines of the registry, e.g. about a plugin not installed yet, may precede it)
    assert [line for line in proc.stderr.splitlines() if line.startswith("error: ")] == [
        "error: MalformedPayload: body is not JSON: Unterminated string starting at (line 1, column 99)"
    ]


# --- replay_fixture --------------------------------------------------------------------


@pytest.mark.django_db
def test_replay_fixture_makes_a_ticket_and_a_second_replay_is_a_duplicate(api_account):
    status, out, err = run("replay_fixture", "acme-api", str(FIXTURES / "message__new_thread.json"))
    assert (status, err) == (0, ""), out
    ticket = Ticket.objects.get()
    event = InboundEvent.objects.get()
    assert event.status == "processed"
    assert f"stored as event {event.pk} for acme-api (api)" in out
    assert "status: processed" in out and 'summary: {"messages": 1}' in out
    assert f"ticket #{ticket.pk} created: 'Order #55871 has not arrived'" in out
    assert Message.objects.get().external_id == "msg-01HF3Z8K2Q"
    # the follow-up threads onto the same ticket
    status, out, _ = run("replay_fixture", "acme-api", str(FIXTURES / "message__follow_up.json"))
    assert status == 0 and f"ticket #{ticket.pk} updated" in out
    # replaying the same bytes again is a redelivery
    status, out, _ = run("replay_fixture", "acme-api", str(FIXTURES / "message__new_thread.json"))
    assert status == 0
    assert out.strip() == f"duplicate, already stored as event {event.pk} (status processed); nothing replayed"
    assert Message.objects.count() == 2 and Ticket.objects.count() == 1


@pytest.mark.django_db
def test_replay_fixture_reports_a_failed_event(api_account):
    status, out, _ = run("replay_fixture", "acme-api", str(FIXTURES / "malformed__naive_sent_at.json"))
    assert status == 1
    assert (
        "status: failed" in out and "error: malformed_payload: sent_at: '2026-11-02 10:05:00' has no time zone" in out
    )
    assert InboundEvent.objects.get().status == "failed" and not Ticket.objects.exists()


@pytest.mark.django_db
def test_replay_fixture_unknown_account():
    status, _, err = run("replay_fixture", "nobody", str(FIXTURES / "message__new_thread.json"))
    assert status == 1 and err.startswith("error: UnknownAccount: no channel account with slug 'nobody'")


def test_replay_fixture_help_says_signatures_are_not_checked():
    from omnidesk.plugins.management.commands.replay_fixture import Command

    assert "signature is NOT verified" in Command.help


# --- startplugin -----------------------------------------------------------------------


def startplugin(tmp_path: Path, name: str = "echo_chat") -> tuple[int, str, str]:
    package_root = tmp_path / "acme_plugins"  # a package, so the plugin is acme_plugins.<name>
    package_root.mkdir(exist_ok=True)
    (package_root / "__init__.py").touch()
    return run("startplugin", name, "--dir", str(package_root), "--tests-dir", str(tmp_path / "tests" / "plugins"))


def test_startplugin_lays_out_a_plugin_that_passes_the_kit(tmp_path):
    status, out, err = startplugin(tmp_path)
    assert (status, err) == (0, "")
    plugin = tmp_path / "acme_plugins" / "echo_chat"
    tests = tmp_path / "tests" / "plugins" / "echo_chat"
    for path in ["__init__.py", "adapter.py", "parsing.py", "client.py", "doc.md"]:
        assert (plugin / path).is_file(), path
    for path in [
        "__init__.py",
        "test_conformance.py",
        "fixtures/message__basic.json",
        "fixtures/message__basic.expected.json",
    ]:
        assert (tests / path).is_file(), path
    assert 'echo_chat = "acme_plugins.echo_chat.adapter:EchoChatChannel"' in out
    assert '[project.entry-points."omnidesk.channels"]' in out
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        cwd=ROOT,
        env=isolated_env(tmp_path, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)])),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def test_startplugin_refuses_an_existing_folder(tmp_path):
    assert startplugin(tmp_path)[0] == 0
    before = (tmp_path / "acme_plugins" / "echo_chat" / "adapter.py").read_text()
    status, out, err = startplugin(tmp_path)
    assert status == 1 and out == ""
    assert err.startswith("error: FolderExists: ") and "echo_chat exists already" in err
    assert (tmp_path / "acme_plugins" / "echo_chat" / "adapter.py").read_text() == before


@pytest.mark.parametrize("name", ["Echo", "my-chat", "9lives", "class", "malformed", "api", ""])
def test_startplugin_validates_the_name(tmp_path, name):
    status, _, err = startplugin(tmp_path, name)
    assert status == 1 and err.startswith("error: InvalidName: ")
    assert not (tmp_path / "tests").exists()
