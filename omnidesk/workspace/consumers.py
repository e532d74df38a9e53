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
