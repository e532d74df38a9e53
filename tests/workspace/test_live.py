"""Live updates sent from a request: batched on the server's loop, merged per group, never waited for."""

from __future__ import annotations

import asyncio
import time

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer

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
