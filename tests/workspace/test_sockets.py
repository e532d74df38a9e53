"""The ticket websocket: only for a ticket the agent may see; viewing/typing presence between agents."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from config.asgi import application
from omnidesk.routing.models import Agent, Group

pytestmark = pytest.mark.django_db(transaction=True)


def _agent(name, *groups):  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_user(name, password="pw")
    Agent.objects.create(user=user).groups.set(groups)
    return user


async def _open(user, ticket_id):  # type: ignore[no-untyped-def]
    c = WebsocketCommunicator(application, f"/ws/tickets/{ticket_id}/", headers=[(b"origin", b"http://127.0.0.1")])
    c.scope["user"] = user
    connected, code = await c.connect()
    return c, connected, code


def test_ticket_socket_scoping_and_presence(api_account, deliver):  # type: ignore[no-untyped-def]
    ticket = deliver()
    support = Group.objects.get(name="Support")
    billing = Group.objects.create(name="Billing")
    alice, bob, eve = _agent("alice", support), _agent("bob", support), _agent("eve", billing)
    async_to_sync(_scenario)(ticket.pk, alice, bob, eve)


async def _scenario(ticket_id, alice, bob, eve):  # type: ignore[no-untyped-def]
    from django.contrib.auth.models import AnonymousUser

    for user in (AnonymousUser(), eve):
        _, connected, code = await _open(user, ticket_id)
        assert not connected and code == 4404
    _, connected, code = await _open(alice, 999999)
    assert not connected and code == 4404

    a, ok, _ = await _open(alice, ticket_id)
    assert ok
    b, ok, _ = await _open(bob, ticket_id)
    assert ok
    assert await a.receive_json_from(timeout=2) == {"event": "presence", "user": bob.pk, "name": "bob", "state": "viewing"}
    assert await b.receive_json_from(timeout=2) == {"event": "presence", "user": alice.pk, "name": "alice", "state": "viewing"}
    await b.send_json_to({"state": "typing"})
    assert (await a.receive_json_from(timeout=2))["state"] == "typing"
    await b.disconnect()
    assert (await a.receive_json_from(timeout=2))["state"] == "left"
    await a.disconnect()
    await sync_to_async(lambda: None)()
