"""`make run`: the demo organisation, its traffic through the real plugins, and the one-process server."""

import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from omnidesk.inbox.services import inbound_events_apply
from omnidesk.plugins.models import ChannelAccount
from omnidesk.plugins.registry import all_plugins
from omnidesk.routing.models import Agent
from omnidesk.tickets.models import Ticket
from omnidesk.workspace.demo import demo_password, demo_seed, demo_traffic

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_seed_is_idempotent_and_covers_every_plugin_with_a_demo():
    demo_seed()
    people, accounts = demo_seed()
    assert {p.username for p in people} == {"manager", "alice", "bob"}
    assert Agent.objects.filter(role="manager").count() == 1 and Agent.objects.filter(role="agent").count() == 2
    assert get_user_model().objects.get(username="alice").check_password(demo_password())
    with_demo = {k for k, cls in all_plugins().items() if cls.demo_account() is not None}
    assert {a.slug for a in accounts} == {f"demo-{k}" for k in with_demo} and "demo-api" in {a.slug for a in accounts}
    assert ChannelAccount.objects.count() == len(with_demo)


@pytest.mark.django_db(transaction=True)
def test_demo_traffic_goes_through_the_real_webhook(live_server):
    demo_seed()
    sent = demo_traffic(base_url=live_server.url, pause_s=0)
    assert sent >= 4
    inbound_events_apply()
    assert Ticket.objects.count() >= 3
    assert Ticket.objects.filter(messages__visibility="public").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_web_worker_and_demo_in_one_process(tmp_path):
    """The embedded default: SQLite, in-memory layer, in-process worker — no service needed."""
    db = tmp_path / "demo.sqlite3"
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DRAMATIQ_BROKER_URL", "REDIS_URL")
    } | {"DATABASE_URL": f"sqlite:///{db}", "OMNIDESK_DEBUG": "1", "MEDIA_ROOT": str(tmp_path / "media")}
    port = _free_port()
    env["OMNIDESK_DEMO_CALLBACK_URL"] = f"http://127.0.0.1:{port}/demo/callback/"
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=ROOT, timeout=120)
    out = subprocess.run([*manage, "seed_demo"], env=env, check=True, cwd=ROOT, timeout=60, capture_output=True, text=True)
    assert "alice" in out.stdout and demo_password() in out.stdout
    proc = subprocess.Popen(
        [*manage, "serve", "--port", str(port), "--demo-traffic"], env=env, cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        counts = (0, 0)
        while time.monotonic() < deadline:
            time.sleep(1)
            if db.exists():
                with sqlite3.connect(db) as conn:
                    processed = conn.execute("select count(*) from inbox_inboundevent where status='processed'").fetchone()[0]
                    tickets = conn.execute("select count(*) from tickets_ticket").fetchone()[0]
                counts = (processed, tickets)
                if processed >= 4:
                    break
        assert counts[0] >= 4 and counts[1] >= 3, counts
    finally:
        proc.terminate()
        try:
            output = proc.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0]
    assert "embedded worker" in output
    assert "Traceback" not in output, output
