"""The ticket websocket: only for a ticket the agent may see; viewing/typing presence between agents.
The queue websocket: its changes batched into at most one frame per interval, none lost."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from config.asgi import application
from omnidesk.routing.models import Agent, Group
from omnidesk.workspace import live

pytestmark = pytest.mark.django_db(transaction=True)


def _agent(name, *groups):  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_user(name, password="pw")
    Agent.objects.create(user=user).groups.set(groups)
    return user


async def _open(user, ticket_id=None):  # type: ignore[no-untyped-def]
    """The page of `ticket_id`'s socket, or the queue's without one."""
    path = f"/ws/tickets/{ticket_id}/" if ticket_id else "/ws/queue/"
    c = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://127.0.0.1")])
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


def test_queue_socket_batches_changes_and_keeps_every_one(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(live, "QUEUE_FRAME_EVERY_S", 1.0)  # wide enough for a loaded test machine
    tier1, tier2 = Group.objects.create(name="Tier 1"), Group.objects.create(name="Tier 2")
    alice, eve = _agent("alice", tier1), _agent("eve", tier2)
    async_to_sync(_batching)(alice, eve, tier1.pk, tier2.pk)


async def _batching(alice, eve, tier1, tier2):  # type: ignore[no-untyped-def]
    from channels.db import database_sync_to_async

    (a, ok_a, _), (e, ok_e, _) = await _open(alice), await _open(eve)
    assert ok_a and ok_e
    send = database_sync_to_async(live.tickets_changed)

    def frame(*changes):  # type: ignore[no-untyped-def]
        return {"event": "tickets.changed", "changes": [{"ticket": t, "change": c} for t, c in changes]}

    await send({1: "created"}, teams={1: tier1})
    assert await a.receive_json_from(timeout=2) == frame((1, "created"))  # a quiet socket is told at once
    await send({2: "created"}, teams={2: tier1})
    await send({1: "claimed", 3: "created"}, teams={1: tier1, 3: tier2})
    await send({2: "created"}, teams={2: tier1})
    assert await a.receive_nothing(timeout=0.2)  # held until a second after the last frame
    assert await a.receive_json_from(timeout=3) == frame((2, "created"), (1, "claimed"))
    assert await e.receive_json_from(timeout=2) == frame((3, "created"))  # only its own group's
    assert await a.receive_nothing(timeout=0.3) and await e.receive_nothing(timeout=0.3)
    await a.disconnect()
    await e.disconnect()


def test_a_teams_queue_sockets_share_each_held_frame(monkeypatch):  # type: ignore[no-untyped-def]
    """Held frames go out on the process's clock: two sockets that sent at different moments still send
    their next frame together, with the same changes, encoded once."""
    monkeypatch.setattr(live, "QUEUE_FRAME_EVERY_S", 0.5)
    tier1 = Group.objects.create(name="Tier 1")
    alice, bob = _agent("alice", tier1), _agent("bob", tier1)
    async_to_sync(_sharing)(alice, bob, tier1.pk)


async def _sharing(alice, bob, tier1):  # type: ignore[no-untyped-def]
    import asyncio

    from channels.db import database_sync_to_async

    from omnidesk.workspace.consumers import queue_frame

    send = database_sync_to_async(live.tickets_changed)
    (a, ok_a, _), (b, ok_b, _) = await _open(alice), await _open(bob)
    assert ok_a and ok_b
    await send({1: "created"}, teams={1: tier1})
    await a.receive_json_from(timeout=2)
    await b.receive_json_from(timeout=2)
    await asyncio.sleep(0.05)
    await send({2: "created"}, teams={2: tier1})
    await send({3: "created"}, teams={3: tier1})
    queue_frame.cache_clear()
    frames = [await a.receive_output(timeout=3), await b.receive_output(timeout=3)]
    assert frames[0] == frames[1]
    assert frames[0]["text"] == ('{"event": "tickets.changed", "changes": [{"ticket": 2, "change": "created"}, '
                                 '{"ticket": 3, "change": "created"}]}')
    assert queue_frame.cache_info().misses == 1  # encoded for one socket, reused by the other
    await a.disconnect()
    await b.disconnect()


def test_a_teams_queue_sockets_share_one_layer_member_per_process():
    """The team's messages are received once per process and handed to each of its sockets (relay.py); the
    last socket to leave takes the membership with it."""
    tier1 = Group.objects.create(name="Tier 1")
    alice, bob = _agent("alice", tier1), _agent("bob", tier1)
    async_to_sync(_relayed)(alice, bob, tier1.pk)


async def _relayed(alice, bob, tier1):  # type: ignore[no-untyped-def]
    import asyncio

    from channels.db import database_sync_to_async
    from channels.layers import get_channel_layer

    from omnidesk.workspace import relay

    team = live.group_for_team(tier1)
    layer = get_channel_layer()._get_layer()  # the Pub/Sub layer of this loop: who it fans out to
    (a, ok_a, _), (b, ok_b, _) = await _open(alice), await _open(bob)
    assert ok_a and ok_b
    assert len(layer.groups[layer._get_group_channel_name(team)]) == 1
    await database_sync_to_async(live.tickets_changed)({1: "claimed"}, teams={1: tier1})
    for socket in (a, b):
        assert await socket.receive_json_from(timeout=2) == {
            "event": "tickets.changed", "changes": [{"ticket": 1, "change": "claimed"}]}
    await a.disconnect()
    assert len(layer.groups[layer._get_group_channel_name(team)]) == 1  # bob is still there
    await b.disconnect()
    await asyncio.sleep(0)
    assert layer._get_group_channel_name(team) not in layer.groups
    assert not [key for key in relay._relays if key[1] == team]


def test_a_failing_socket_does_not_starve_the_others_of_its_team():
    async_to_sync(_failing)()


async def _failing():  # type: ignore[no-untyped-def]
    import asyncio

    from channels.layers import get_channel_layer

    from omnidesk.workspace import relay

    class Socket:
        channel_layer = get_channel_layer()

        def __init__(self, fails: bool) -> None:
            self.fails, self.got = fails, asyncio.Queue()

        def relayed(self, message: dict) -> None:
            if self.fails:
                raise RuntimeError("closed")
            self.got.put_nowait(message)

    broken, fine = Socket(fails=True), Socket(fails=False)
    for socket in (broken, fine):
        await relay.join("desk.group.99", socket)
    for n in (1, 2):
        await Socket.channel_layer.group_send("desk.group.99", live.tickets_payload({n: "created"}))
        assert await asyncio.wait_for(fine.got.get(), 5) == live.tickets_payload({n: "created"})
    for socket in (broken, fine):
        await relay.leave("desk.group.99", socket)


@pytest.mark.parametrize("path", ["/ws/nowhere/", "/ws/tickets/abc/", "/"])
def test_a_socket_to_an_unknown_path_is_refused_not_an_error(path):  # type: ignore[no-untyped-def]
    async def scenario() -> tuple[bool, int]:
        c = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://127.0.0.1")])
        connected, code = await c.connect()
        return connected, code

    assert async_to_sync(scenario)() == (False, 4404)
