"""One channel-layer member per group per web process for the queue sockets, relaying to them by a method call.

Every queue socket of a team joined the team's group itself: each layer message was then put on each
socket's own channel, decoded once per socket and woke each socket's receive task and `asyncio.wait`
(channels' await_many_dispatch), which then started a new receive task. With 100 sockets per team
that per-socket machinery was a quarter of the web processes' CPU (py-spy, bench/load.py). A relay
receives the group's messages once and hands each of its sockets the same decoded message.

Relays live on the event loop of their sockets: the first socket of a group starts its relay (and
waits until it is subscribed, as its own group_add did), the last one to leave stops it, so no task
outlives its sockets.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Member(Protocol):
    channel_layer: Any

    def relayed(self, message: dict) -> None:
        """Take one of the group's messages; called on the loop, must not block."""


class _Relay:
    """A group's member sockets on one loop, and the task receiving the group's messages for them."""

    def __init__(self) -> None:
        self.members: dict[Member, None] = {}  # ordered: sockets are told in the order they joined
        self.subscribed: asyncio.Future = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task | None = None


_relays: dict[tuple[asyncio.AbstractEventLoop, str], _Relay] = {}


async def join(group: str, member: Member) -> None:
    """Relay `group`'s messages to `member` from now on: returns once the group is subscribed."""
    key = (asyncio.get_running_loop(), group)
    relay = _relays.get(key)
    if relay is None:
        relay = _relays[key] = _Relay()
        relay.task = asyncio.ensure_future(_receive(member.channel_layer, group, relay))
    relay.members[member] = None
    await asyncio.shield(relay.subscribed)


async def leave(group: str, member: Member) -> None:
    """Stop relaying to `member`; the group's last member stops the relay."""
    key = (asyncio.get_running_loop(), group)
    relay = _relays.get(key)
    if relay is None or member not in relay.members:
        return
    del relay.members[member]
    if relay.members:
        return
    del _relays[key]
    assert relay.task is not None
    relay.task.cancel()
    await asyncio.gather(relay.task, return_exceptions=True)


async def _receive(layer: Any, group: str, relay: _Relay) -> None:
    try:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
    except BaseException as exc:  # the joiners fail as their own group_add would have
        key = (asyncio.get_running_loop(), group)
        if _relays.get(key) is relay:  # not when its members left already and others started a new one
            del _relays[key]
        if isinstance(exc, Exception):
            relay.subscribed.set_exception(exc)
        else:
            relay.subscribed.cancel()
        raise
    relay.subscribed.set_result(None)
    try:
        while True:
            try:
                message = await layer.receive(channel)
            except Exception:  # a layer that lost its server: as channels_redis' own receiver, try again
                log.exception("live updates of %s not received", group)
                await asyncio.sleep(1)
                continue
            for member in list(relay.members):
                try:
                    member.relayed(message)
                except Exception:  # one socket's failure is no reason to starve the others
                    log.exception("live update to a %s socket failed", group)
    finally:
        await asyncio.shield(layer.group_discard(group, channel))
