"""Live updates: from a request batched on the server's loop and never waited for; from a plain thread sent
before tickets_changed returns."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest
import redis
import redis.asyncio.connection
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings
from django.test import override_settings

from omnidesk.workspace import live


def test_a_batch_is_one_message_per_group_with_each_change_once():
    sends = [
        (live.MANAGERS, live.tickets_payload({1: "created"})),
        (live.group_for_team(7), live.tickets_payload({1: "created"})),
        (live.group_for_ticket(1), live.ticket_payload(1, "created")),
        (live.MANAGERS, live.tickets_payload({2: "created", 1: "claimed"})),
        (live.MANAGERS, live.tickets_payload({1: "created"})),
        (live.group_for_ticket(1), live.ticket_payload(1, "created")),
        (live.group_for_ticket(1), live.ticket_payload(1, "claimed")),
    ]
    assert live.merged(sends) == [
        (live.MANAGERS, {"type": "tickets.changed", "changes": [
            {"ticket": 1, "change": "created"}, {"ticket": 2, "change": "created"}, {"ticket": 1, "change": "claimed"}]}),
        (live.group_for_team(7), live.tickets_payload({1: "created"})),
        (live.group_for_ticket(1), live.ticket_payload(1, "created")),
        (live.group_for_ticket(1), live.ticket_payload(1, "claimed")),
    ]


def test_requests_changes_reach_the_layer_in_one_batch_without_holding_the_request(monkeypatch):
    monkeypatch.setattr(live, "SEND_BATCH_S", 0.5)
    async_to_sync(_from_requests)()


async def _from_requests():  # type: ignore[no-untyped-def]
    layer = get_channel_layer()
    team = await layer.new_channel()
    await layer.group_add(live.group_for_team(3), team)
    try:
        def two_requests() -> float:  # each, in a view's thread, tells about its ticket
            started = time.monotonic()
            live.tickets_changed({10: "claimed"}, teams={10: 3})
            live.tickets_changed({11: "updated", 10: "claimed"}, teams={11: 3, 10: 3})
            return time.monotonic() - started

        assert await sync_to_async(two_requests)() < live.SEND_BATCH_S  # neither waited for the sends
        message = await asyncio.wait_for(layer.receive(team), timeout=5)
        assert message == live.tickets_payload({10: "claimed", 11: "updated"})
        try:
            await asyncio.wait_for(layer.receive(team), timeout=0.3)
            raise AssertionError("the batch was sent more than once")
        except TimeoutError:
            pass
    finally:
        await layer.group_discard(live.group_for_team(3), team)


def test_a_requests_batch_reaches_every_group_in_one_round_trip(monkeypatch):
    if not isinstance(get_channel_layer(), RedisPubSubChannelLayer):
        pytest.skip("the batch is pipelined only on the Pub/Sub layer")
    writes: list[bytes] = []
    send_packed_command = redis.asyncio.connection.AbstractConnection.send_packed_command

    async def counted(connection, command, *args, **kwargs):  # type: ignore[no-untyped-def]
        packed = b"".join(command) if isinstance(command, list) else command
        if b"PUBLISH" in packed:
            writes.append(packed)
        return await send_packed_command(connection, command, *args, **kwargs)

    monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "send_packed_command", counted)
    async_to_sync(_one_round_trip)(writes)


async def _one_round_trip(writes: list[bytes]):  # type: ignore[no-untyped-def]
    layer = get_channel_layer()
    groups = [live.MANAGERS, live.group_for_team(3), live.group_for_ticket(10), live.group_for_ticket(11)]
    channels = [await layer.new_channel() for _ in groups]
    for group, channel in zip(groups, channels):
        await layer.group_add(group, channel)
    try:
        await sync_to_async(live.tickets_changed)({10: "claimed", 11: "claimed"}, teams={10: 3, 11: 3})
        received = [await asyncio.wait_for(layer.receive(channel), timeout=5) for channel in channels]
        assert received == [live.tickets_payload({10: "claimed", 11: "claimed"})] * 2 + [
            live.ticket_payload(10, "claimed"), live.ticket_payload(11, "claimed")]
        assert len(writes) == 1  # the four PUBLISHes in one write, on one Redis (one shard)
    finally:
        for group, channel in zip(groups, channels):
            await layer.group_discard(group, channel)


def test_a_plain_threads_changes_reach_every_group_before_it_returns():
    async_to_sync(_from_a_worker)()


async def _from_a_worker():  # type: ignore[no-untyped-def]
    layer = get_channel_layer()
    groups = [live.MANAGERS, live.group_for_team(3), live.group_for_ticket(10)]
    channels = [await layer.new_channel() for _ in groups]
    for group, channel in zip(groups, channels):
        await layer.group_add(group, channel)
    try:
        def worker() -> None:  # a dramatiq worker's thread: no server loop
            live.tickets_changed({10: "claimed"}, teams={10: 3})
            # sent after it returned, on a connection of its own: it arrives after the update only if
            # the update had left before tickets_changed returned
            async_to_sync(layer.group_send)(live.group_for_ticket(10), {"type": "marker"})

        thread = threading.Thread(target=worker)
        thread.start()
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
        received = [await asyncio.wait_for(layer.receive(channel), timeout=5) for channel in channels]
        assert received == [live.tickets_payload({10: "claimed"}), live.tickets_payload({10: "claimed"}),
                            live.ticket_payload(10, "claimed")]
        assert await asyncio.wait_for(layer.receive(channels[2]), timeout=5) == {"type": "marker"}
    finally:
        for group, channel in zip(groups, channels):
            await layer.group_discard(group, channel)


def test_a_plain_threads_send_never_raises_when_redis_is_down(caplog):
    backend = settings.CHANNEL_LAYERS["default"]["BACKEND"]  # the Pub/Sub layer where the settings name none
    down = {"default": {
        "BACKEND": backend if "channels_redis" in backend else "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [{"address": "redis://127.0.0.1:1/0", "socket_connect_timeout": 1}]}}}
    with override_settings(CHANNEL_LAYERS=down), caplog.at_level(logging.WARNING, logger=live.__name__):
        thread = threading.Thread(target=live.tickets_changed, args=({10: "claimed"},), kwargs={"teams": {10: 3}})
        thread.start()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert "not delivered" in caplog.text


def test_a_plain_thread_sends_again_after_redis_closed_its_connection():
    if not isinstance(get_channel_layer(), RedisPubSubChannelLayer):
        pytest.skip("a plain thread holds a connection of its own only on the Pub/Sub layer")
    async_to_sync(_after_a_dropped_connection)()


async def _after_a_dropped_connection():  # type: ignore[no-untyped-def]
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(live.group_for_ticket(10), channel)
    admin = redis.Redis.from_url(settings.REDIS_URL)
    database = admin.connection_pool.connection_kwargs.get("db", 0)

    def worker() -> int:
        live.tickets_changed({10: "claimed"}, teams={10: 3})
        killed = 0
        for client in admin.client_list():  # as Redis' idle timeout or a restart would
            if client["name"] == live.PUBLISHER_NAME and int(client["db"]) == database:
                killed += admin.client_kill_filter(_id=client["id"])
        live.tickets_changed({10: "solved"}, teams={10: 3})
        return killed

    try:
        assert await asyncio.get_running_loop().run_in_executor(None, worker) >= 1
        received = [await asyncio.wait_for(layer.receive(channel), timeout=5) for _ in range(2)]
        assert received == [live.ticket_payload(10, "claimed"), live.ticket_payload(10, "solved")]
    finally:
        await layer.group_discard(live.group_for_ticket(10), channel)
        admin.close()


@pytest.mark.django_db
def test_a_ticket_moved_to_another_team_is_told_to_the_team_it_left(support, billing, api_account, deliver):  # type: ignore[no-untyped-def]
    ticket = deliver()
    assert ticket.group_id == support.pk
    async_to_sync(_moved)(ticket, support, billing)


async def _moved(ticket, support, billing):  # type: ignore[no-untyped-def]
    from django.test import TestCase

    from omnidesk.tickets.services import ticket_update

    layer = get_channel_layer()
    teams = [live.group_for_team(support.pk), live.group_for_team(billing.pk)]
    channels = [await layer.new_channel() for _ in teams]
    for group, channel in zip(teams, channels):
        await layer.group_add(group, channel)
    try:
        def move() -> None:  # in the request's thread, as the API's PATCH
            with TestCase.captureOnCommitCallbacks(execute=True):
                ticket_update(ticket=ticket, user=None, group=billing)

        await sync_to_async(move)()
        received = [await asyncio.wait_for(layer.receive(channel), timeout=5) for channel in channels]
        # the team it left drops it from its queue (its row is no longer theirs), the new team shows it
        assert received == [live.tickets_payload({ticket.pk: "updated"})] * 2
    finally:
        for group, channel in zip(teams, channels):
            await layer.group_discard(group, channel)
