"""The agents' websocket: authenticated, subscribed only to what the agent may see."""

from __future__ import annotations

import asyncio
import functools
import json
import math

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from omnidesk.routing.selectors import user_can_work, user_group_ids, user_is_manager

from . import live, relay


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """A websocket fed by the channel layer, whose layer handlers never touch the database.

    Channels runs close_old_connections() in the process's one sync thread before every handler
    (channels.consumer.AsyncConsumer.dispatch): a thread hop per update per socket, queued behind
    the Django views that share that thread. With 100 sockets per team that hop was most of the
    web processes' CPU for live updates (docs/benchmarks.md, bench/load.py). Layer messages skip
    it; the socket's own events (connect, receive, disconnect) keep it, and every query here goes
    through database_sync_to_async, which closes old connections itself.
    """

    async def dispatch(self, message: dict) -> None:
        if message["type"].startswith("websocket."):
            await super().dispatch(message)
            return
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)


@functools.lru_cache(maxsize=256)
def queue_frame(changes: tuple[tuple[int, str], ...]) -> str:
    """A queue frame's text, encoded once per process: a team's sockets there get the same layer message
    at the same moment, so mostly send the same frame (JSON per socket was a quarter of the frames' CPU)."""
    return json.dumps({"event": "tickets.changed", "changes": [{"ticket": t, "change": c} for t, c in changes]})


def _tick(after: float) -> float:
    """The first tick of the process's frame clock (the loop's time in QUEUE_FRAME_EVERY_S steps) at or after `after`."""
    every = live.QUEUE_FRAME_EVERY_S
    return math.ceil(after / every - 1e-6) * every


class QueueConsumer(LiveConsumer):
    """ws/queue/: which of the agent's tickets changed, in at most one frame per live.QUEUE_FRAME_EVERY_S.

    A change is sent at once when the socket has been quiet that long; changes arriving sooner wait
    for the next frame, each (ticket, change) once. A busy desk changes tickets faster than any page
    needs telling, and a frame per change per socket was a large part of the web processes' work.
    Held frames go out on ticks of one clock for the whole process (_tick), all in the same turn of
    the loop, so a team's sockets hold the same changes and share one encoded frame (queue_frame).
    The team's messages reach the socket through the process's relay for that team (relay.py), not
    through a layer membership of its own.
    """

    async def connect(self) -> None:
        user = self.scope.get("user")
        groups = await self._groups(user)
        if groups is None:
            await self.close(code=4401)
            return
        self.subscribed = groups
        self.pending: dict[tuple[int, str], None] = {}  # an ordered set
        self.last_frame = 0.0
        self.held: asyncio.Task | None = None
        self.sending: set[asyncio.Task] = set()  # the loop keeps only weak references to its tasks
        for name in groups:
            await relay.join(name, self)
        await self.accept()

    @database_sync_to_async
    def _groups(self, user) -> list[str] | None:  # type: ignore[no-untyped-def]
        if user is None or not user.is_authenticated or not user_can_work(user):
            return None
        if user_is_manager(user):
            return [live.MANAGERS]
        return [live.group_for_team(g) for g in sorted(user_group_ids(user))]

    async def disconnect(self, code: int) -> None:
        for name in getattr(self, "subscribed", []):
            await relay.leave(name, self)
        for task in [self.held, *getattr(self, "sending", ())]:
            if task is not None:
                task.cancel()

    def relayed(self, message: dict) -> None:
        """A team message, from the relay: it must not wait on this socket (a slow client would hold the others)."""
        if message["type"] == "incident.changed":
            self._spawn(self.send_json({"event": "incident.changed", "incident": message["incident"]}))
            return
        for item in message["changes"]:
            self.pending[(item["ticket"], item["change"])] = None
        if self.held is not None:
            return  # a frame is already due
        loop = asyncio.get_running_loop()
        at = loop.time()
        if at < self.last_frame + live.QUEUE_FRAME_EVERY_S:
            at = _tick(self.last_frame + live.QUEUE_FRAME_EVERY_S)
        self.held = self._spawn(self._send_pending(at))

    def _spawn(self, coro) -> asyncio.Task:  # type: ignore[no-untyped-def]
        task = asyncio.ensure_future(coro)
        self.sending.add(task)
        task.add_done_callback(self._sent)
        return task

    def _sent(self, task: asyncio.Task) -> None:
        """A send to a socket that has just closed fails; its disconnect is on the way, nothing to report."""
        self.sending.discard(task)
        if not task.cancelled():
            task.exception()

    async def _send_pending(self, at: float) -> None:
        loop = asyncio.get_running_loop()
        if at > loop.time():
            # call_at, not sleep(): every socket waiting for this tick wakes in the same turn of the loop,
            # before the relay's next message reaches any of them
            due = loop.create_future()
            loop.call_at(at, lambda: due.done() or due.set_result(None))
            await due
        self.held = None
        changes, self.pending = self.pending, {}
        self.last_frame = at
        await self.send(text_data=queue_frame(tuple(changes)))


class TicketConsumer(LiveConsumer):
    """ws/tickets/<id>/: who else is viewing or typing on this ticket, and changes to it.

    Only for a ticket the agent may see (the same selector as the pages); anything else is closed
    with 4404, never telling whether the ticket exists.
    """

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.ticket_id = int(self.scope["url_route"]["kwargs"]["ticket_id"])
        who = await self._who(user, self.ticket_id)
        if who is None:
            await self.close(code=4404)
            return
        self.user_id, self.name = who
        # each agent's last state told to this page: a repeat changes nothing on it. On the Pub/Sub layer
        # a socket that joins just after a newcomer's announcement still gets it, and answers it twice.
        self.told: dict[int, str] = {}
        self.group = live.group_for_ticket(self.ticket_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self._announce("viewing", reply_to=self.channel_name)

    @database_sync_to_async
    def _who(self, user, ticket_id: int) -> tuple[int, str] | None:  # type: ignore[no-untyped-def]
        from omnidesk.tickets.selectors import ticket_list_for_user

        if user is None or not user.is_authenticated or not user_can_work(user):
            return None
        if not ticket_list_for_user(user=user).filter(pk=ticket_id).exists():
            return None
        return user.pk, user.get_full_name() or user.get_username()

    async def _announce(self, state: str, reply_to: str = "") -> None:
        payload = live.ticket_presence_payload(
            ticket_id=self.ticket_id, user_id=self.user_id, name=self.name, state=state, reply_to=reply_to
        )
        await self.channel_layer.group_send(self.group, payload)

    async def receive_json(self, content: dict, **kwargs: object) -> None:
        state = content.get("state") if isinstance(content, dict) else None
        if state in ("viewing", "typing"):
            await self._announce(state)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self._announce("left")
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def ticket_presence(self, event: dict) -> None:
        if event["user"] == self.user_id and not event["reply_to"]:
            return
        if event["reply_to"] and event["reply_to"] != self.channel_name:
            # a newcomer: tell them we are here too
            await self.channel_layer.send(
                event["reply_to"],
                live.ticket_presence_payload(ticket_id=self.ticket_id, user_id=self.user_id, name=self.name, state="viewing"),
            )
        if event["user"] == self.user_id or self.told.get(event["user"]) == event["state"]:
            return
        self.told[event["user"]] = event["state"]
        await self.send_json({"event": "presence", "user": event["user"], "name": event["name"], "state": event["state"]})

    async def ticket_changed(self, event: dict) -> None:
        await self.send_json({"event": "ticket.changed", "ticket": event["ticket"], "change": event["change"]})


class NoSuchSocket(AsyncJsonWebsocketConsumer):
    """Any other ws/ path: the handshake is refused (close code 4404, as for a ticket one may not see);
    without it the router raised and the server answered 500, logging a traceback per request."""

    async def connect(self) -> None:
        await self.close(code=4404)
