""""Next ticket" through config.asgi: one hop per request to a reused thread, the middleware all kept."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.core.signals import request_finished, request_started
from django.test import Client
from rest_framework.authtoken.models import Token

from config.asgi import application
from omnidesk.tickets.models import Ticket

from .conftest import NOW, ingest

pytestmark = pytest.mark.django_db(transaction=True)  # the requests run in their own threads and connections


@pytest.fixture(autouse=True)
def _connections_closed_after_each_request():  # type: ignore[no-untyped-def]
    """As with the pool the ASGI deployment uses: a request's connection is gone when it ends."""
    from django.db import connection

    kept = connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_MAX_AGE"] = 0
    yield
    connection.settings_dict["CONN_MAX_AGE"] = kept


def _post(path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[str, str], bytes]:
    async def run() -> tuple[int, dict[str, str], bytes]:
        scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
                 "headers": [(b"host", b"testserver"), (b"content-length", b"0"), *headers], "scheme": "http",
                 "server": ("testserver", 80), "client": ("127.0.0.1", 5000), "asgi": {"version": "3.0"},
                 "http_version": "1.1", "root_path": ""}
        app = ApplicationCommunicator(application, scope)
        await app.send_input({"type": "http.request", "body": b""})
        start, body = await app.receive_output(10), b""
        while True:
            part = await app.receive_output(10)
            body += part.get("body", b"")
            if not part.get("more_body"):
                break
        await app.wait(10)  # the response closed: request_finished sent
        return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body

    return async_to_sync(run)()


def test_claims_over_asgi_run_each_in_one_reused_thread(api_account, agent):
    for i in range(2):
        ingest(api_account, f"q-{i}", author=f"a{i}", email=f"a{i}@example.com", sent_at=NOW - timedelta(hours=2 - i))
    token = Token.objects.create(user=agent).key
    threads: list[int] = []

    def record(**kwargs: object) -> None:
        threads.append(threading.get_ident())

    request_started.connect(record)
    request_finished.connect(record)
    try:
        answers = [_post("/api/v1/queue/next/", [(b"authorization", f"Token {token}".encode())]) for _ in range(2)]
    finally:
        request_started.disconnect(record)
        request_finished.disconnect(record)
    assert [status for status, _, _ in answers] == [200, 200], answers
    assert sorted(Ticket.objects.filter(assignee=agent).values_list("pk", flat=True)) == sorted(
        int(body.split(b'"id":', 1)[1].split(b",", 1)[0]) for _, _, body in answers
    )
    for _, headers, _ in answers:  # the middleware ran
        assert headers["x-content-type-options"] == "nosniff" and "content-security-policy" in headers
    # each request opened, used and closed its connection in one thread; the second reused the first's
    assert len(threads) == 4 and len(set(threads)) == 1 and threads[0] != threading.get_ident()


def test_csrf_still_guards_a_session_post_over_asgi(api_account, agent):
    client = Client()
    client.force_login(agent)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    status, _, body = _post("/api/v1/queue/next/", [(b"cookie", cookie)])
    assert status == 403 and b"CSRF" in body
    assert not Ticket.objects.filter(assignee=agent).exists()


@pytest.mark.parametrize("module", ["config.asgi", "config.wsgi"])
def test_the_web_process_loads_and_freezes_views_and_plugins_at_startup(module):
    """The cyclic collector then skips Django, the apps and every view: a full collection of that heap
    paused every request of the process for 70-120 ms (bench/claim.py). The channel plugins are loaded
    then too: on first use they made a fresh process's first webhooks wait 250-800 ms, every request
    thread arriving meanwhile loading them again (bench/ingest.py)."""
    import subprocess
    import sys

    from omnidesk.devtools.procs import ROOT, child_env

    code = (
        f"import gc, sys, {module}; from importlib.metadata import entry_points;"
        " from omnidesk.plugins.registry import GROUP, registry;"
        " print(gc.get_freeze_count(), 'omnidesk.api.routing' in sys.modules, registry.cache_info().currsize,"
        " all(ep.module in sys.modules for ep in entry_points(group=GROUP)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=child_env(), capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    # the views came with the URLconf and the plugins with the registry, both before the freeze
    assert int(out[0]) > 50_000 and out[1:] == ["True", "1", "True"]


@pytest.mark.django_db
def test_the_web_process_opens_its_whole_database_pool_at_startup(postgres):
    """With DATABASE_POOL_MAX_SIZE the pool is of a fixed size by default and fills as the process starts,
    before any request: the first burst of claims used to wait for new connections (bench/claim.py)."""
    import subprocess
    import sys

    from omnidesk.devtools.procs import ROOT, child_env, subprocess_database_url

    code = ("import config.asgi; from django.db import connection; pool = connection.pool; pool.wait(30);"
            " print(pool.get_stats()['pool_size'], pool.min_size, pool.max_size)")
    env = child_env(DATABASE_URL=subprocess_database_url(), DATABASE_POOL_MAX_SIZE="3")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out == ["3", "3", "3"]
