"""The agents' websocket: authenticated, subscribed only to what the agent may see."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from omnidesk.routing.selectors import user_can_work, user_group_ids, user_is_manager

from . import live


class QueueConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        groups = await self._groups(user)
        if groups is None:
            await self.close(code=4401)
            return
        self.subscribed = groups
        for name in groups:
            await self.channel_layer.group_add(name, self.channel_name)
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
            await self.channel_layer.group_discard(name, self.channel_name)

    async def ticket_changed(self, event: dict) -> None:
        await self.send_json({"event": "ticket.changed", "ticket": event["ticket"], "change": event["change"]})

    async def incident_changed(self, event: dict) -> None:
        await self.send_json({"event": "incident.changed", "incident": event["incident"]})


class TicketConsumer(AsyncJsonWebsocketConsumer):
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
        if event["user"] == self.user_id:
            return
        await self.send_json({"event": "presence", "user": event["user"], "name": event["name"], "state": event["state"]})

    async def ticket_changed(self, event: dict) -> None:
        await self.send_json({"event": "ticket.changed", "ticket": event["ticket"], "change": event["change"]})
