"""The same attacker through the workspace pages, the websockets and the admin."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client

from omnidesk.customers.services import customer_merge
from omnidesk.customers.models import Customer

from .attacks import page_attacks, send

pytestmark = pytest.mark.django_db


def _client(user) -> Client:  # type: ignore[no-untyped-def]
    c = Client()
    c.force_login(user)
    return c


def test_another_groups_objects_are_404_on_every_page(agent, own, victim) -> None:  # type: ignore[no-untyped-def]
    client = _client(agent)
    before = victim.snapshot()
    identity = victim.ticket.messages.first().author_identity_id
    real = page_attacks(ticket=victim.ticket.pk, attachment=victim.attachment.pk, identity=identity,
                        own_customer=own.customer_id)
    fake = page_attacks(ticket=victim.ticket.pk + 1000, attachment=victim.attachment.pk + 1000, identity=identity,
                        own_customer=own.customer_id)
    problems = []
    for attack, control in zip(real, fake):
        response, missing = send(client, attack, form=True), send(client, control, form=True)
        if response.status_code != 404 or missing.status_code != 404:
            problems.append(f"{attack.method.upper()} {attack.path}: {response.status_code} (missing: {missing.status_code})")
        elif b"VICTIM" in response.content or b"Vic Tim" in response.content:
            problems.append(f"{attack.path}: the 404 shows the victim's data")
    assert not problems, "\n".join(problems)
    assert victim.snapshot() == before


def test_queue_page_and_ticket_history_leave_out_other_groups(agent, manager, own, victim) -> None:  # type: ignore[no-untyped-def]
    client = _client(agent)
    queue = client.get("/").content.decode()
    assert f"ticket-{own.pk}" in queue and f"ticket-{victim.ticket.pk}" not in queue
    # merging into one's own customer a customer one cannot see is refused like a missing one
    refused = client.post(f"/tickets/{own.pk}/merge/", {"other": victim.customer.pk})
    missing = client.post(f"/tickets/{own.pk}/merge/", {"other": victim.customer.pk + 1000})
    assert refused.status_code == missing.status_code == 400 and refused.json() == missing.json()
    assert Customer.objects.get(pk=victim.customer.pk).merged_into_id is None
    assert "Vic" not in client.get(f"/tickets/{own.pk}/merge/?q=Vic").content.decode()
    # once a manager merges the two people, the agent's page still shows only Support's tickets
    customer_merge(survivor=own.customer, merged=victim.customer, user=manager)
    page = client.get(f"/tickets/{own.pk}/").content.decode()
    assert "OWN-TEXT" in page and "VICTIM-TEXT" not in page and f"ticket #{victim.ticket.pk}" not in page


def test_the_admin_is_for_staff_only(agent, victim) -> None:  # type: ignore[no-untyped-def]
    """Agents are not Django staff: every admin page sends them to the admin's login."""
    client = _client(agent)
    for url in ("/admin/", "/admin/tickets/ticket/", f"/admin/tickets/ticket/{victim.ticket.pk}/change/",
                f"/admin/customers/customer/{victim.customer.pk}/change/", "/admin/plugins/channelaccount/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url


@pytest.mark.django_db(transaction=True)
def test_websockets_carry_nothing_of_another_group(agent, own, victim) -> None:  # type: ignore[no-untyped-def]
    from config.asgi import application
    from omnidesk.workspace import live

    async def scenario() -> None:
        async def open_(path: str):  # type: ignore[no-untyped-def]
            c = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://127.0.0.1")])
            c.scope["user"] = agent
            return c, *(await c.connect())

        for ticket_id in (victim.ticket.pk, victim.ticket.pk + 1000):  # theirs, and one that does not exist
            _, connected, code = await open_(f"/ws/tickets/{ticket_id}/")
            assert not connected and code == 4404
        # another site's page opening the agent's socket with the agent's cookies (cross-site hijacking)
        evil = WebsocketCommunicator(application, "/ws/queue/", headers=[(b"origin", b"https://evil.example")])
        evil.scope["user"] = agent
        assert not (await evil.connect())[0]
        queue, connected, _ = await open_("/ws/queue/")
        assert connected
        await database_sync(live.tickets_changed)({victim.ticket.pk: "updated"})
        assert await queue.receive_nothing(timeout=0.3)
        await database_sync(live.tickets_changed)({own.pk: "updated"})
        assert (await queue.receive_json_from(timeout=2))["changes"] == [{"ticket": own.pk, "change": "updated"}]
        await queue.disconnect()

    async_to_sync(scenario)()


def database_sync(fn):  # type: ignore[no-untyped-def]
    from channels.db import database_sync_to_async

    return database_sync_to_async(fn)


def test_cross_site_requests_are_refused(agent, own) -> None:  # type: ignore[no-untyped-def]
    """With the agent's session cookie but no CSRF token (another site's form), nothing is written."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(agent)
    before = own.messages.count()
    assert client.post(f"/api/v1/tickets/{own.pk}/notes/", {"text": "forged"}).status_code == 403
    assert client.post(f"/tickets/{own.pk}/merge/", {"other": own.customer_id}).status_code == 403
    assert own.messages.count() == before


def test_sign_in_never_redirects_to_another_site(agent) -> None:  # type: ignore[no-untyped-def]
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = Client().post("/accounts/login/", {"username": "sam", "password": "pw-sam", "next": target})
        assert response.status_code == 302 and "evil" not in response["Location"], target
