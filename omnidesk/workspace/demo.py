"""The demo organisation and its traffic, for `make run` on a bare laptop."""

from __future__ import annotations

import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from omnidesk.inbox.services import inbound_event_enqueue, inbound_event_store
from omnidesk.plugins.contract import RawEvent, WebhookRequest
from omnidesk.plugins.models import ChannelAccount
from omnidesk.plugins.registry import all_plugins
from omnidesk.plugins.services import account_plugin, channel_account_save
from omnidesk.routing.models import Agent, Group

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Login:
    username: str
    password: str
    role: str
    groups: tuple[str, ...]


def demo_password() -> str:
    return os.environ.get("OMNIDESK_DEMO_PASSWORD", "omnidesk-demo")


@transaction.atomic
def demo_seed() -> tuple[list[Login], list[ChannelAccount]]:
    """Create (or refresh) the demo organisation; running it twice changes nothing."""
    support = Group.objects.get_or_create(name="Support")[0]
    social = Group.objects.get_or_create(name="Social")[0]
    password = demo_password()
    people = [
        Login("manager", password, Agent.Role.MANAGER, ("Support", "Social")),
        Login("alice", password, Agent.Role.AGENT, ("Support",)),
        Login("bob", password, Agent.Role.AGENT, ("Support", "Social")),
    ]
    User = get_user_model()
    groups = {g.name: g for g in (support, social)}
    for person in people:
        user, created = User.objects.get_or_create(username=person.username)
        if created or not user.check_password(person.password):
            user.set_password(person.password)
        user.is_staff = person.role == Agent.Role.MANAGER
        user.save()
        agent, _ = Agent.objects.get_or_create(user=user)
        agent.role = person.role
        agent.save()
        agent.groups.set([groups[g] for g in person.groups])
    accounts = []
    for kind, cls in all_plugins().items():
        demo = cls.demo_account()
        if demo is None:
            continue
        slug = f"demo-{kind}"
        existing = ChannelAccount.objects.filter(slug=slug).first()
        accounts.append(
            channel_account_save(
                kind=kind, slug=slug, name=demo.name, config=demo.config, secrets=demo.secrets,
                default_group_id=support.pk, account=existing,
            )
        )
    return people, accounts


def demo_traffic(*, base_url: str, pause_s: float = 1.5) -> int:
    """Push every demo account's sample traffic through the real paths: HTTP webhooks, or store+enqueue."""
    sent = 0
    for account in ChannelAccount.objects.filter(slug__startswith="demo-", enabled=True):
        plugin = account_plugin(account)
        for item in plugin.demo_events():
            if isinstance(item, WebhookRequest):
                request = urllib.request.Request(
                    f"{base_url}/hooks/{account.slug}/", data=item.body, method="POST", headers=dict(item.headers)
                )
                try:
                    with urllib.request.urlopen(request, timeout=10) as resp:
                        resp.read()
                except urllib.error.HTTPError as exc:
                    log.warning("demo event for %s refused: %s %s", account.slug, exc.code, exc.read()[:200])
                    continue
            elif isinstance(item, RawEvent):
                event, created = inbound_event_store(account=account, raw=item)
                if created:
                    inbound_event_enqueue([event.pk])
            sent += 1
            time.sleep(pause_s)
    return sent
