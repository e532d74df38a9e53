"""The agent pages: login everywhere, scoped like the API, security headers, the composer's facts."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.test import Client

from omnidesk.customers.models import Customer
from omnidesk.tickets.models import Attachment, TicketEvent

pytestmark = pytest.mark.django_db


def _client(user) -> Client:  # type: ignore[no-untyped-def]
    c = Client()
    c.force_login(user)
    return c


def test_every_page_needs_a_login(sending_account, deliver):  # type: ignore[no-untyped-def]
    ticket = deliver()
    anon = Client()
    for url in ("/", f"/tickets/{ticket.pk}/", f"/queue/rows/{ticket.pk}/", "/manage/"):
        response = anon.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next="), url
    assert anon.get("/accounts/login/").status_code == 200


def test_login_page_signs_an_agent_in(agent):  # type: ignore[no-untyped-def]
    c = Client(enforce_csrf_checks=True)
    page = c.get("/accounts/login/")
    token = page.cookies["csrftoken"].value
    response = c.post("/accounts/login/", {"username": "sam", "password": "pw-sam", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert c.get("/").status_code == 200
    refused = Client(enforce_csrf_checks=True).post("/accounts/login/", {"username": "sam", "password": "pw-sam"})
    assert refused.status_code == 403  # no CSRF token


def test_users_without_agent_profile_are_refused(outsider):  # type: ignore[no-untyped-def]
    assert _client(outsider).get("/").status_code == 403


def test_queue_shows_rows_with_security_headers(agent, sending_account, deliver):  # type: ignore[no-untyped-def]
    ticket = deliver(text="Where is my parcel?")
    response = _client(agent).get("/")
    assert response.status_code == 200
    assert f'id="ticket-{ticket.pk}"' in response.content.decode()
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    row = _client(agent).get(f"/queue/rows/{ticket.pk}/")
    assert row.status_code == 200 and row.content.decode().lstrip().startswith("<tr")


def test_another_groups_ticket_is_404_everywhere(agent, billing_account, deliver):  # type: ignore[no-untyped-def]
    ticket = deliver("billing-api", id="b-1")
    message = ticket.messages.first()
    att = Attachment.objects.create(message=message, filename="x.txt", content_type="text/plain", size=2, sha256="ab" * 32,
                                    file=ContentFile(b"hi", name="x.txt"))
    c = _client(agent)
    assert c.get(f"/tickets/{ticket.pk}/").status_code == 404
    assert c.get(f"/queue/rows/{ticket.pk}/").status_code == 404
    assert c.get(f"/attachments/{att.pk}/").status_code == 404
    assert c.post(f"/tickets/{ticket.pk}/measure/", {"identity": 1, "text": "x"}).status_code == 404
    assert f"ticket-{ticket.pk}" not in c.get("/").content.decode()


def test_attachments_download_never_render(manager, sending_account, deliver):  # type: ignore[no-untyped-def]
    ticket = deliver()
    message = ticket.messages.first()
    att = Attachment.objects.create(message=message, filename="page.html", content_type="text/html", size=20,
                                    sha256="cd" * 32, file=ContentFile(b"<script>alert(1)</script>", name="p.html"))
    response = _client(manager).get(f"/attachments/{att.pk}/")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert response["Content-Type"] == "application/octet-stream"


def test_ticket_page_history_and_composer(agent, sending_account, deliver):  # type: ignore[no-untyped-def]
    first = deliver(id="m-1", thread="t-1", text="My parcel never arrived.")
    second = deliver(id="m-2", thread="t-2", text="Still nothing! <b>bold</b>")
    assert first.customer_id == second.customer_id and first.pk != second.pk
    page = _client(agent).get(f"/tickets/{second.pk}/").content.decode()
    assert "My parcel never arrived." in page and f"ticket #{first.pk}" in page  # the other ticket, marked
    assert "Still nothing! &lt;b&gt;bold&lt;/b&gt;" in page  # plain text escaped
    assert 'id="composer-config"' in page and '"max_length"' in page


def test_measure_is_the_plugins_count(agent, sending_account, deliver):  # type: ignore[no-untyped-def]
    ticket = deliver()
    identity = ticket.messages.first().author_identity
    response = _client(agent).post(f"/tickets/{ticket.pk}/measure/", {"identity": identity.pk, "text": "héllo"})
    assert response.status_code == 200 and response.json()["length"] == 5


def test_merge_customers_from_the_ticket_page(agent, sending_account, deliver):  # type: ignore[no-untyped-def]
    mine = deliver(id="m-1", thread="t-1")
    other = deliver(id="m-9", thread="t-9", author={"id": "u-9", "name": "Ada on X"})
    assert mine.customer_id != other.customer_id
    c = _client(agent)
    found = c.get(f"/tickets/{mine.pk}/merge/?q=Ada on").content.decode()
    assert f'data-customer="{other.customer_id}"' in found
    response = c.post(f"/tickets/{mine.pk}/merge/", {"other": other.customer_id})
    assert response.status_code == 200, response.content
    other.refresh_from_db()
    assert other.customer_id == mine.customer_id
    assert Customer.objects.get(pk=response.json() and other.customer_id).pk == mine.customer_id
    assert TicketEvent.objects.filter(ticket=other, action="customer_merged").exists()
    page = c.get(f"/tickets/{mine.pk}/").content.decode()
    assert f"ticket #{other.pk}" in page and "Merged here" in page


def test_manager_dashboard(manager, agent, sending_account, deliver):  # type: ignore[no-untyped-def]
    deliver()
    page = _client(manager).get("/manage/").content.decode()
    assert "acme-api" in page and "Ingest lag" in page and "/admin/routing/rule/" in page
    assert _client(agent).get("/manage/").status_code == 403


def test_static_assets_are_served_by_the_asgi_app():  # type: ignore[no-untyped-def]
    """`make run` is one uvicorn process: the ASGI app itself serves the committed CSS and JS."""
    from asgiref.sync import async_to_sync
    from asgiref.testing import ApplicationCommunicator

    from config.asgi import application

    async def get(path: str) -> tuple[int, bytes]:
        scope = {"type": "http", "method": "GET", "path": path, "query_string": b"", "headers": [], "http_version": "1.1"}
        app = ApplicationCommunicator(application, scope)
        await app.send_input({"type": "http.request", "body": b""})
        start = await app.receive_output(5)
        body = b""
        while True:
            chunk = await app.receive_output(5)
            body += chunk.get("body", b"")  # the spec lets the last chunk omit "body"
            if not chunk.get("more_body"):
                return start["status"], body

    status, body = async_to_sync(get)("/static/workspace/desk.js")
    assert status == 200 and b"desk" in body
