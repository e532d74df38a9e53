"""The agents' websocket: authenticated, scoped to the agent's groups, fed after each commit."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from config.asgi import application
from omnidesk.inbox.services import inbound_events_apply
from omnidesk.routing.models import Agent, Group
from tests.conftest import api_body

pytestmark = pytest.mark.django_db(transaction=True)


def _agent(name, *groups, role="agent"):
    user = get_user_model().objects.create_user(name, password="pw")
    agent = Agent.objects.create(user=user, role=role)
    agent.groups.set(groups)
    return user


async def _connect(user):
    communicator = WebsocketCommunicator(application, "/ws/queue/", headers=[(b"origin", b"http://127.0.0.1")])
    communicator.scope["user"] = user
    connected, code = await communicator.connect()
    return communicator, connected, code


def test_anonymous_and_non_staff_are_refused():
    async_to_sync(_anonymous_and_non_staff_are_refused)()


async def _anonymous_and_non_staff_are_refused():
    from django.contrib.auth.models import AnonymousUser

    _, connected, code = await _connect(AnonymousUser())
    assert not connected and code == 4401
    outsider = await sync_to_async(get_user_model().objects.create_user)("mallory")
    _, connected, code = await _connect(outsider)
    assert not connected and code == 4401


def test_agents_hear_only_their_groups_tickets(api_account, post_hook):
    async_to_sync(_agents_hear_only_their_groups_tickets)(post_hook)


async def _agents_hear_only_their_groups_tickets(post_hook):
    support = await sync_to_async(Group.objects.get)(name="Support")
    other = await sync_to_async(Group.objects.create)(name="Billing")
    alice = await sync_to_async(_agent)("alice", support)
    bob = await sync_to_async(_agent)("bob", other)
    boss = await sync_to_async(_agent)("boss", role="manager")
    clients = {}
    for name, user in (("alice", alice), ("bob", bob), ("boss", boss)):
        clients[name], connected, _ = await _connect(user)
        assert connected

    await sync_to_async(post_hook)("acme-api", api_body())
    await sync_to_async(inbound_events_apply)()

    for name in ("alice", "boss"):
        event = await clients[name].receive_json_from(timeout=5)
        assert event["event"] == "tickets.changed" and event["changes"][0]["change"] == "created"
    assert await clients["bob"].receive_nothing(timeout=0.5)
    for c in clients.values():
        await c.disconnect()
