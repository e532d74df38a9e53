"""Secrets never come out: every plugin's account is given distinctive secret values, the desk is
exercised end to end (API, webhooks, ingest, replies failing against an upstream that echoes what
it got, admin pages, workspace pages, management commands, DEBUG logging), and all of it is grepped."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from omnidesk.inbox.models import InboundEvent
from omnidesk.inbox.services import inbound_event_store, inbound_events_apply
from omnidesk.plugins.config import describe, secret_fields
from omnidesk.plugins.contract import RawEvent, WebhookRequest
from omnidesk.plugins.models import ChannelAccount
from omnidesk.plugins.registry import registry
from omnidesk.plugins.services import account_plugin
from omnidesk.tickets.models import OutboundMessage, Ticket
from omnidesk.tickets.outbox import outbound_send
from tests.api.conftest import client_for

from .echo import closed_port, echo_server

pytestmark = pytest.mark.django_db

#: per plugin kind: settings that point its sends at the test's echo server (demo config otherwise)
KNOBS: dict[str, Callable[[str], dict[str, Any]]] = {
    "api": lambda url: {"callback_url": url + "/callback"},
    "twitter": lambda url: {"api_base_url": url, "poll_enabled": False},
    "facebook": lambda url: {"graph_url": url, "dry_run": False},
    "email": lambda url: {"smtp_host": "127.0.0.1", "smtp_port": closed_port(), "smtp_security": "none"},
    "phone": lambda url: {},
}


class Transcript:
    """Everything the desk said, by where it said it."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, str]] = []

    def add(self, where: str, text: Any) -> None:
        self.parts.append((where, text if isinstance(text, str) else repr(text)))

    def response(self, where: str, response: Any) -> Any:
        self.add(f"{where} → {response.status_code}", response.content.decode(errors="replace"))
        self.add(f"{where} headers", str(dict(response.items())))
        return response

    def leaks(self, secrets: dict[str, str]) -> list[str]:
        return [f"{label} ({value}) in {where}" for where, text in self.parts
                for label, value in secrets.items() if value in text]


@contextmanager
def every_log_line() -> Iterator[io.StringIO]:
    """What the configured log handlers write, with every logger at DEBUG whatever its level."""
    from omnidesk.security.redact import RedactSecretsFilter

    handlers = [h for h in logging.root.handlers
                if isinstance(h, logging.StreamHandler) and any(isinstance(f, RedactSecretsFilter) for f in h.filters)]
    assert handlers, "settings.LOGGING's console handler has lost its RedactSecretsFilter"
    out = io.StringIO()
    loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)] + [logging.root]
    levels = {lg: lg.level for lg in loggers}
    saved = [(h, h.setStream(out), h.level) for h in handlers]  # type: ignore[func-returns-value]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    for h in handlers:
        h.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        for h, stream, level in saved:
            h.setStream(stream)
            h.setLevel(level)
        for lg, level in levels.items():
            lg.setLevel(level)


def _post_hook(client: Client, slug: str, hook: WebhookRequest) -> Any:
    meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in hook.headers.items() if k.lower() != "content-type"}
    content_type = hook.headers.get("Content-Type") or "application/json"
    return client.generic(hook.method, f"/hooks/{slug}/", hook.body, content_type=content_type, **meta)


def _accounts_created(api: Any, group: int, url: str, say: Transcript) -> dict[str, str]:
    """One account per installed plugin, every secret distinctive; returns label → secret value."""
    secrets: dict[str, str] = {}
    for kind, cls in sorted(registry().plugins.items()):
        demo = cls.demo_account()
        assert demo is not None and kind in KNOBS, f"plugin {kind}: add its settings to KNOBS in {__file__}"
        values = {name: f"SeKrEt{kind}{name.replace('_', '')}{uuid.uuid4().hex[:8]}" for name in secret_fields(cls.config_schema)}
        secrets.update({f"{kind}.{n}": v for n, v in values.items()})
        body = {"kind": kind, "slug": f"sec-{kind}", "name": f"Secret {kind}", "config": {**demo.config, **KNOBS[kind](url)},
                "secrets": values, "default_group": group}
        created = say.response(f"POST account {kind}", api.post("/api/v1/channel-accounts/", body, format="json"))
        assert created.status_code == 201, created.content
        assert sorted(created.json()["secrets_set"]) == sorted(values)
        say.add(f"describe {kind}", json.dumps(describe(cls.config_schema)))
        plugin = account_plugin(ChannelAccount.objects.get(slug=f"sec-{kind}"))
        say.add(f"plugin {kind}", f"{plugin!r} {plugin!s} {plugin.config!r} {plugin.config!s}")
    return secrets


def _refused_writes(api: Any, say: Transcript) -> dict[str, str]:
    """Invalid writes carrying new secret values: the error bodies must not echo them."""
    fresh = {f"refused.{n}": f"ReFuSeD{n}{uuid.uuid4().hex[:8]}" for n in range(4)}
    values = list(fresh.values())
    for slug in ChannelAccount.objects.values_list("slug", flat=True):
        url = f"/api/v1/channel-accounts/{slug}/"
        say.response(f"PATCH bad config {slug}", api.patch(url, {"config": {"nonsense": values[0]}, "secrets": {"x": values[1]}}, format="json"))
        say.response(f"PATCH unknown secret {slug}", api.patch(url, {"secrets": {"not_a_secret": values[2]}}, format="json"))
        say.response(f"PATCH bad secret type {slug}", api.patch(url, {"secrets": {"secret": {"v": values[3]}}}, format="json"))
    bad = say.response("POST bad kind", api.post("/api/v1/channel-accounts/", {"kind": "nope", "slug": "x", "name": "x",
                                                                               "secrets": {"secret": values[0]}}, format="json"))
    assert bad.status_code == 400
    return fresh


def _traffic(say: Transcript) -> None:
    """Each plugin's demo events in through its webhook (signed with the secrets) or store, then applied."""
    hooks = Client()
    for account in ChannelAccount.objects.filter(slug__startswith="sec-"):
        for event in account_plugin(account).demo_events():
            if isinstance(event, WebhookRequest):
                answer = say.response(f"webhook {account.slug}", _post_hook(hooks, account.slug, event))
                assert answer.status_code == 200, (account.slug, answer.content)
            else:
                inbound_event_store(account=account, raw=RawEvent(body=event.body, headers=event.headers))
        say.response(f"forged webhook {account.slug}", hooks.post(f"/hooks/{account.slug}/", b"{}", content_type="application/json"))
    say.response("meta handshake, wrong token", hooks.get("/hooks/sec-facebook/", {
        "hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "123"}))
    say.response("x crc", hooks.get("/hooks/sec-twitter/", {"crc_token": "abc"}))
    for _ in range(5):
        inbound_events_apply()
    failed = InboundEvent.objects.filter(status=InboundEvent.Status.FAILED).values_list("account__slug", "error")
    assert not failed, list(failed)


def _failing_replies(api: Any, say: Transcript) -> None:
    for ticket in Ticket.objects.filter(origin_account__slug__startswith="sec-"):
        say.response(f"reply {ticket.origin_account.kind}", api.post(
            f"/api/v1/tickets/{ticket.pk}/replies/", {"text": "We are on it.", "allow_public_pii": True}, format="json"))
    sent = OutboundMessage.objects.filter(account__slug__startswith="sec-")
    assert {o.account.kind for o in sent} >= {"api", "twitter", "facebook", "email"}
    for outbound in sent:
        outbound_send(outbound_id=outbound.pk)
    errors = list(OutboundMessage.objects.filter(account__slug__startswith="sec-").values_list(
        "account__kind", "status", "last_error"))
    assert all(e[2] for e in errors), f"every send fails against the echo server: {errors}"
    say.add("outbox errors", errors)


def _everything_shown(api: Any, admin: Client, desk: Client, say: Transcript, tmp_path: Any) -> None:
    for url in ["/api/v1/channel-accounts/", "/api/v1/channels/", "/api/v1/tickets/", "/api/v1/customers/",
                *(f"/api/v1/channel-accounts/{s}/" for s in ChannelAccount.objects.values_list("slug", flat=True)),
                *(f"/api/v1/tickets/{t}/" for t in _one_per_account(Ticket, "origin_account"))]:
        say.response(f"API {url}", api.get(url))
    admin_urls = ["/admin/plugins/channelaccount/", "/admin/tickets/outboundmessage/", "/admin/inbox/inboundevent/",
                  "/admin/tickets/ticket/", "/admin/tickets/ticketevent/"]
    admin_urls += [f"/admin/plugins/channelaccount/{pk}/change/" for pk in ChannelAccount.objects.values_list("pk", flat=True)]
    # one failed reply per channel (its error), one event and one ticket per account
    admin_urls += [f"/admin/tickets/outboundmessage/{pk}/change/" for pk in _one_per_account(OutboundMessage)]
    admin_urls += [f"/admin/inbox/inboundevent/{pk}/change/" for pk in _one_per_account(InboundEvent)]
    admin_urls += [f"/admin/tickets/ticket/{pk}/change/" for pk in _one_per_account(Ticket, "origin_account")]
    for url in admin_urls:
        response = say.response(f"admin {url}", admin.get(url))
        assert response.status_code == 200, url
    account = ChannelAccount.objects.get(slug="sec-twitter")
    form = {"slug": account.slug, "name": account.name, "enabled": "on", "config": '{"user_id": 1}',
            "default_region": "", "secret__consumer_key": "AdMiNtYpEd" + uuid.uuid4().hex[:8]}
    say.response("admin change refused", admin.post(f"/admin/plugins/channelaccount/{account.pk}/change/", form))
    say.add("admin typed", form["secret__consumer_key"])  # so leaks() can look for it (the label says where)
    for url in ["/manage/", *(f"/tickets/{t}/" for t in _one_per_account(Ticket, "origin_account"))]:
        say.response(f"page {url}", desk.get(url))
    for account in ChannelAccount.objects.filter(slug__startswith="sec-"):
        events = InboundEvent.objects.filter(account=account)[:1]
        for event in events:
            path = tmp_path / f"{account.slug}.payload"
            path.write_bytes(bytes(event.body))
            say.add(f"replay_fixture {account.slug}", _command("replay_fixture", account.slug, str(path)))
            say.add(f"parse_fixture {account.kind}", _command("parse_fixture", account.kind, str(path)))
    say.add("parity_report", _command("parity_report", "--since", "2000-01-01", "--until", "2100-01-01"))
    say.add("dumpdata", _command("dumpdata", "plugins", "tickets", "inbox", "customers"))


def _one_per_account(model: Any, field: str = "account") -> list[int]:
    firsts: dict[int, int] = {}
    for pk, account in model.objects.order_by("pk").values_list("pk", field):
        firsts.setdefault(account, pk)
    return list(firsts.values())


def _command(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(*args, stdout=out, stderr=err)
    except SystemExit:
        pass
    return out.getvalue() + err.getvalue()


def test_no_secret_value_ever_comes_out(manager, agent, support, django_user_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    say = Transcript()
    boss = django_user_model.objects.create_superuser("root", password="pw-root")
    admin, desk = Client(), Client()
    admin.force_login(boss)
    desk.force_login(manager)
    api = client_for(manager)
    with echo_server() as url, every_log_line() as log:
        secrets = _accounts_created(api, support.pk, url, say)
        secrets.update(_refused_writes(api, say))
        _traffic(say)
        _failing_replies(api, say)
        _everything_shown(api, admin, desk, say, tmp_path)
        for label, api_client in (("agent", client_for(agent)), ("manager", api)):
            say.response(f"{label} accounts", api_client.get("/api/v1/channel-accounts/"))
    typed = next(text for where, text in say.parts if where == "admin typed")
    say.parts = [(w, t) for w, t in say.parts if w != "admin typed"]
    secrets["admin.typed"] = typed
    lines = log.getvalue()
    say.add("log lines", lines)
    assert lines.count("\n") > 20 and " DEBUG " in lines  # DEBUG logging was on
    leaks = say.leaks(secrets)
    assert not leaks, "secrets came out:\n" + "\n".join(leaks[:40])
