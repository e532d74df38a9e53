"""Security headers on every route of the URLconf, pages that work under the CSP, HTTPS settings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse

from omnidesk.routing.models import Rule
from omnidesk.security.headers import CSP
from omnidesk.sla.models import Calendar, Policy
from omnidesk.tickets.models import Attachment
from omnidesk.workspace.views_ticket import DOWNLOAD_CSP

from .routes import routes

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _urls(own, account) -> list[str]:  # type: ignore[no-untyped-def]
    att = Attachment.objects.create(message=own.messages.first(), filename="a.txt", content_type="text/plain", size=2,
                                    sha256="aa" * 32, file=ContentFile(b"hi", name="a.txt"))
    values = {"slug": account.slug, "ticket_id": own.pk, "attachment_id": att.pk, "incident_id": 1}
    pks = {"ticket": own.pk, "customer": own.customer_id, "sla-policy": Policy.objects.values_list("pk", flat=True).first(),
           "sla-calendar": Calendar.objects.values_list("pk", flat=True).first(),
           "routing-rule": Rule.objects.values_list("pk", flat=True).first()}
    urls = ["/admin/", "/admin/login/", "/admin/tickets/ticket/", f"/admin/tickets/ticket/{own.pk}/change/",
            "/static/../no-such-page/", "/tickets/not-a-number/"]
    for r in routes():
        if r.pattern.startswith("admin/"):
            continue
        kwargs = {k: values.get(k) for k in r.kwargs}
        if "pk" in r.kwargs:
            kwargs["pk"] = next((v for prefix, v in pks.items() if r.name.startswith(prefix)), 1)
        if r.name == "omnidesk.api.urls.not_found":
            urls.append("/api/v1/no-such-endpoint/")
        else:
            urls.append(reverse(r.name, kwargs=kwargs))
    return urls


def test_every_route_answers_with_the_security_headers(manager, own, sending_account) -> None:  # type: ignore[no-untyped-def]
    signed_in, anonymous = Client(), Client()
    signed_in.force_login(manager)
    problems = []
    statuses = {}
    for url in _urls(own, sending_account):
        for who, client in (("manager", signed_in), ("anonymous", anonymous)):
            response = client.get(url)
            statuses[(who, url)] = response.status_code
            expected = dict(EXPECTED)
            if url.startswith("/attachments/") and response.status_code == 200:
                expected["Content-Security-Policy"] = DOWNLOAD_CSP  # stricter still: a download is sandboxed
            wrong = {k: response.get(k) for k, v in expected.items() if response.get(k) != v}
            if "Permissions-Policy" not in response or "camera=()" not in response["Permissions-Policy"]:
                wrong["Permissions-Policy"] = response.get("Permissions-Policy")
            # the health check takes no login (so it never sees the user): nothing private in it
            if who == "manager" and "health" not in url and "no-store" not in response.get("Cache-Control", ""):
                wrong["Cache-Control"] = response.get("Cache-Control")
            if wrong:
                problems.append(f"{who} GET {url} ({response.status_code}): {wrong}")
    assert not problems, "\n".join(problems)
    assert statuses[("manager", f"/tickets/{own.pk}/")] == 200  # the walk reached real pages, not only errors
    assert statuses[("manager", "/api/v1/tickets/")] == 200


def test_errors_and_posts_carry_the_headers_too(own, post_hook) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import api_body

    for response in (
        post_hook("acme-api", api_body(id="h-1"), signature="sha256=forged"),  # 401 from the webhook
        post_hook("no-such-account", api_body()),  # 404
        Client().post("/api/v1/tickets/", {}),  # 401 API
        Client().post("/accounts/login/", {"username": "x", "password": "y"}),  # CSRF 403
    ):
        assert {k: response.get(k) for k in EXPECTED} == EXPECTED, response.status_code


def test_pages_need_no_inline_script_or_style(manager, own, sending_account) -> None:  # type: ignore[no-untyped-def]
    """The CSP allows scripts and styles from our static files only: no page of ours may rely on others.

    Every HTML page of the URLconf is checked (Django's admin and DRF's browsable API are theirs)."""
    from django.utils import timezone

    from omnidesk.incidents.models import Incident

    Incident.objects.create(pk=1, title="Outage", source=Incident.Source.MANUAL, opened_at=timezone.now())
    client = client_signed_in(manager)
    html = {"/accounts/login/": Client().get("/accounts/login/")}
    for url in _urls(own, sending_account):
        if not url.startswith(("/admin/", "/api/")):
            html[url] = client.get(url)
    pages = {url: r.content.decode() for url, r in html.items()
             if r.status_code == 200 and r.get("Content-Type", "").startswith("text/html")}
    assert {"/", f"/tickets/{own.pk}/", "/manage/", "/reports/parity/", "/reports/incidents/1/"} <= set(pages)
    for url, text in pages.items():
        inline = [s for s in re.findall(r"<script\b[^>]*>", text) if "src=" not in s and "application/json" not in s]
        assert not inline, f"{url}: inline script {inline}"
        assert not re.search(r"""\sstyle\s*=\s*["']""", text), f"{url}: a style attribute (blocked by the CSP)"
        assert not re.search(r"""\son[a-z]+\s*=\s*["']""", text), f"{url}: an inline event handler"
        assert "<style" not in text, f"{url}: a <style> element (blocked by the CSP)"


def client_signed_in(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def test_headers_even_when_the_session_store_is_down() -> None:
    """A 503 for a database outage still leaves with its headers, never turned into a 500 on the way."""
    from django.db import OperationalError
    from django.http import HttpResponse
    from django.test import RequestFactory
    from django.utils.functional import SimpleLazyObject

    from omnidesk.security.headers import SecurityHeadersMiddleware

    def down() -> None:
        raise OperationalError("connection refused")

    request = RequestFactory().get("/")
    request.user = SimpleLazyObject(down)  # type: ignore[attr-defined]
    response = SecurityHeadersMiddleware(lambda r: HttpResponse(status=503))(request)
    assert response.status_code == 503 and response["Cache-Control"] == "no-store"
    assert response["Content-Security-Policy"] == CSP


def _settings_under(env: dict[str, str], code: str) -> dict:  # type: ignore[type-arg]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OMNIDESK_") and k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, "DATABASE_URL": "sqlite:///:memory:", **env},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


PROBE = """
import json, os
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
import django; django.setup()
from django.conf import settings
from django.test import Client
plain = Client().get("/api/v1/health/?x", follow=False)
secure = Client().get("/accounts/login/", secure=True)
print(json.dumps({
    "cookies_secure": [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE],
    "hsts": secure.get("Strict-Transport-Security"),
    "csrf_cookie_secure": bool(secure.cookies["csrftoken"]["secure"]),
    "http_redirect": [Client().get("/accounts/login/").status_code, Client().get("/accounts/login/").get("Location")],
    "health_over_http": plain.status_code,
}))
"""


def test_https_settings_from_the_environment() -> None:
    on = _settings_under({"OMNIDESK_HTTPS": "1", "ALLOWED_HOSTS": "testserver"}, PROBE)
    assert on["cookies_secure"] == [True, True] and on["csrf_cookie_secure"]
    assert on["hsts"] == "max-age=31536000"
    assert on["http_redirect"] == [301, "https://testserver/accounts/login/"]
    assert on["health_over_http"] in (200, 503)  # load balancers probe plain HTTP
    off = _settings_under({"OMNIDESK_HTTPS": "1", "OMNIDESK_DEBUG": "1"}, SETTINGS_ONLY)  # never under DEBUG
    assert off == {"cookies_secure": [False, False], "hsts": 0, "redirect": False}


SETTINGS_ONLY = """
import json
from config import settings as s
print(json.dumps({"cookies_secure": [getattr(s, "SESSION_COOKIE_SECURE", False), getattr(s, "CSRF_COOKIE_SECURE", False)],
                  "hsts": getattr(s, "SECURE_HSTS_SECONDS", 0), "redirect": getattr(s, "SECURE_SSL_REDIRECT", False)}))
"""


@pytest.mark.parametrize("path, status", [("/static/workspace/desk.js", 200), ("/static/workspace/no-such.js", 404)])
def test_static_files_served_by_the_asgi_app_carry_the_headers(path, status) -> None:  # type: ignore[no-untyped-def]
    """Static answers skip the middleware: the ASGI app's own static handler adds the same headers."""
    from asgiref.sync import async_to_sync
    from asgiref.testing import ApplicationCommunicator

    from config.asgi import application

    async def get() -> dict:
        scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
                 "headers": [(b"host", b"testserver")], "scheme": "http", "server": ("testserver", 80),
                 "client": ("127.0.0.1", 5000), "asgi": {"version": "3.0"}, "http_version": "1.1", "root_path": ""}
        app = ApplicationCommunicator(application, scope)
        await app.send_input({"type": "http.request", "body": b""})
        start = await app.receive_output(10)
        while (await app.receive_output(10)).get("more_body"):
            pass
        return start

    start = async_to_sync(get)()
    headers = {k.decode().title(): v.decode() for k, v in start["headers"]}
    assert start["status"] == status
    for name, value in EXPECTED.items():
        assert headers.get(name) == value, name
