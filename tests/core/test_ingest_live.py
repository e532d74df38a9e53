"""The live update after an apply batch goes to the team the batch left each ticket with, read back from
no table."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from config.asgi import application
from omnidesk.inbox.services import inbound_events_apply
from omnidesk.routing.models import Agent, Group
from omnidesk.routing.services import rule_save
from tests.conftest import api_body, statements_sent

pytestmark = pytest.mark.django_db(transaction=True)


def _agent(name, *groups):  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_user(name, password="pw")
    Agent.objects.create(user=user, role="agent").groups.set(groups)
    return user


def _apply() -> list[str]:
    with statements_sent() as sql:  # the commit's callbacks run inside: the apply is the outermost transaction
        assert inbound_events_apply().applied == 1
    return sql


def test_a_ticket_a_rule_moved_is_announced_to_its_new_team(api_account, post_hook):
    async_to_sync(_moved)(post_hook)


async def _moved(post_hook) -> None:  # type: ignore[no-untyped-def]
    support = await sync_to_async(Group.objects.get)(name="Support")
    billing = await sync_to_async(Group.objects.create)(name="Billing")
    await sync_to_async(rule_save)(
        name="to billing", events=["ticket_created"], actions=[{"type": "set_group", "value": "Billing"}]
    )
    clients = {}
    for name, group in (("alice", support), ("bob", billing)):
        user = await sync_to_async(_agent)(name, group)
        clients[name] = WebsocketCommunicator(application, "/ws/queue/", headers=[(b"origin", b"http://127.0.0.1")])
        clients[name].scope["user"] = user
        assert (await clients[name].connect())[0]

    await sync_to_async(post_hook)("acme-api", api_body())
    sql = await sync_to_async(_apply)()

    event = await clients["bob"].receive_json_from(timeout=5)
    assert event["event"] == "tickets.changed" and event["changes"][0]["change"] == "created"
    assert await clients["alice"].receive_nothing(timeout=0.5)
    assert not [s for s in sql if '"tickets_ticket"."group_id"' in s and "WHERE" in s], "the teams were read back"
    for client in clients.values():
        await client.disconnect()
