"""The generic JSON channel: any system (a chat widget, a CRM, a status page) posts signed messages."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import requests

from omnidesk.plugins.config import ConfigSchema, Secret, setting
from omnidesk.plugins.contract import (
    Author,
    Capabilities,
    ChannelPlugin,
    Delivery,
    DeliveryUpdate,
    DemoAccount,
    Headers,
    Feature,
    IdentityKind,
    IdentityRef,
    InboundMessage,
    OutboundReply,
    ParsedItem,
    PermanentSendError,
    RawEvent,
    SignatureInvalid,
    WebhookRequest,
    WebhookResponse,
    hmac_sha256,
    signatures_match,
)
from omnidesk.plugins.html import sanitize_html
from omnidesk.plugins.payloads import content_type_check

from . import parsing
from .client import SIGNATURE_HEADER, CallbackClient


@dataclass(frozen=True)
class ApiConfig(ConfigSchema):
    secret: Secret = setting(help="shared secret: signs webhooks in both directions (HMAC-SHA256)")
    callback_url: str = setting("", help="where replies are POSTed; empty = this account cannot reply")
    timeout_s: float = setting(10.0, help="seconds to wait for the callback")


class ApiChannel(ChannelPlugin[ApiConfig]):
    kind = "api"
    label = "API"
    capabilities = Capabilities(
        features=frozenset({Feature.PUSH, Feature.PUBLIC_REPLY, Feature.PRIVATE_REPLY, Feature.HANDOFF, Feature.HTML}),
        max_length=parsing.MAX_TEXT,
    )
    config_schema = ApiConfig
    event_types = {
        "message": "a customer's message → a message on a ticket (new thread → new ticket)",
        "delivery": "delivered / read / failed notice about a reply we sent → updates that reply",
        "status": "a monitoring / status-page incident update → opens, updates or resolves an incident",
    }

    def __init__(self, config: ApiConfig, *, account_slug: str = "", session: requests.Session | None = None) -> None:
        super().__init__(config, account_slug=account_slug)
        self._session = session

    def verify(self, request: WebhookRequest) -> WebhookResponse | None:
        content_type_check(request.headers)
        given = request.headers.get(SIGNATURE_HEADER, "")
        if not given:
            raise SignatureInvalid(f"missing {SIGNATURE_HEADER} header")
        if not given.startswith("sha256="):
            raise SignatureInvalid(f"{SIGNATURE_HEADER} must be 'sha256=<hex>'")
        expected = "sha256=" + hmac_sha256(self.config.secret.reveal(), request.body).hex()
        if not signatures_match(expected, given.strip().lower()):
            raise SignatureInvalid(f"{SIGNATURE_HEADER} does not match the body")
        return None

    def parse(self, raw: RawEvent) -> list[ParsedItem]:
        data = parsing.load_object(raw.body)
        kind = parsing.event_type(data, set(self.event_types))
        if kind == "delivery":
            state = parsing.text(data, "state", limit=20)
            if state not in ("delivered", "read", "failed"):
                raise parsing.MalformedPayload(f"state: must be delivered, read or failed, got {state!r}")
            return [
                DeliveryUpdate(
                    external_id=parsing.text(data, "id", limit=300),
                    state=state,  # type: ignore[arg-type]
                    reason=parsing.text(data, "reason", required=False, limit=500),
                    permanent=state == "failed",
                    at=parsing.timestamp(data, "at"),
                )
            ]
        if kind == "status":
            return [parsing.status_signal(data)]
        author = parsing.obj(data, "author")
        also = []
        email = parsing.text(author, "email", required=False, limit=320, path="author.")
        phone = parsing.text(author, "phone", required=False, limit=40, path="author.")
        if email:
            also.append(IdentityRef(IdentityKind.EMAIL, email))
        if phone:
            also.append(IdentityRef(IdentityKind.PHONE, phone))
        external_id = parsing.text(data, "id", limit=300)
        body_text = parsing.text(data, "text", required=False, limit=parsing.MAX_TEXT)
        # Customer HTML is untrusted: parse() hands the core sanitized HTML only.
        html = sanitize_html(parsing.text(data, "html", required=False, limit=parsing.MAX_TEXT))
        if not body_text and not html:
            raise parsing.MalformedPayload("text: required (or html)")
        sent_at = parsing.timestamp(data, "sent_at")
        return [
            InboundMessage(
                external_id=external_id,
                event_type="message",
                thread_key=parsing.text(data, "thread", required=False, limit=300) or external_id,
                author=Author(
                    identity=IdentityRef(
                        IdentityKind.EXTERNAL, parsing.text(author, "id", limit=300, path="author."), self.account_slug
                    ),
                    display_name=parsing.text(author, "name", required=False, limit=200, path="author."),
                    also=tuple(also),
                ),
                text=body_text,
                html=html,
                subject=parsing.text(data, "subject", required=False, limit=300),
                visibility="public" if parsing.boolean(data, "public") else "private",
                sent_at=sent_at.astimezone(timezone.utc) if sent_at else None,
                references=(parsing.text(data, "in_reply_to", required=False, limit=300),)
                if data.get("in_reply_to")
                else (),
            )
        ]

    @classmethod
    def demo_account(cls) -> DemoAccount:
        return DemoAccount(
            name="Demo chat widget",
            config={"callback_url": os.environ.get("OMNIDESK_DEMO_CALLBACK_URL", "http://127.0.0.1:8000/demo/callback/")},
            secrets={"secret": os.environ.get("OMNIDESK_DEMO_API_SECRET", "demo-secret")},
        )

    def demo_events(self) -> list[WebhookRequest | RawEvent]:
        now = datetime.now(timezone.utc)
        people = [
            ("visitor-1", "Grace Hopper", "grace@example.com", "Hi, my card was charged twice for order 1042.", False),
            ("visitor-2", "Alan Turing", "", "Your status page says all green but checkout fails for me.", True),
            ("visitor-3", "Katherine Johnson", "katherine@example.com", "How do I change my delivery address?", False),
            ("visitor-1", "Grace Hopper", "grace@example.com", "Any news? Still charged twice.", False),
        ]
        events: list[WebhookRequest | RawEvent] = []
        for n, (who, name, email, text, public) in enumerate(people):
            thread = f"demo-chat-{who}"
            author: dict[str, str] = {"id": who, "name": name}
            if email:
                author["email"] = email
            body = json.dumps(
                {
                    "id": f"demo-{now:%Y%m%d%H%M%S}-{n}",
                    "thread": thread,
                    "author": author,
                    "text": text,
                    "public": public,
                    "sent_at": (now - timedelta(minutes=30 - 5 * n)).isoformat(),
                }
            ).encode()
            signature = "sha256=" + hmac_sha256(self.config.secret.reveal(), body).hex()
            events.append(
                WebhookRequest(
                    method="POST", url="", query={}, body=body,
                    headers=Headers({"Content-Type": "application/json", SIGNATURE_HEADER: signature}),
                )
            )
        return events

    def check_reply(self, reply: OutboundReply) -> None:
        super().check_reply(reply)
        if not self.config.callback_url:
            raise PermanentSendError(f"account {self.account_slug or '?'} has no callback_url, so it cannot send replies")

    def send(self, reply: OutboundReply) -> Delivery:
        self.check_reply(reply)
        client = CallbackClient(
            url=self.config.callback_url,
            secret=self.config.secret.reveal(),
            timeout_s=self.config.timeout_s,
            session=self._session or requests.Session(),
        )
        answer = client.post(
            {
                "type": "reply",
                "id": reply.idempotency_key,
                "ticket": reply.ticket_ref,
                "thread": reply.thread_key,
                "in_reply_to": reply.in_reply_to,
                "to": {"id": reply.to.value},
                "text": reply.text,
                "html": reply.html,
                "public": reply.visibility == "public",
            },
            idempotency_key=reply.idempotency_key,
        )
        external_id = answer.get("id")
        return Delivery(external_id=str(external_id) if external_id else reply.idempotency_key)
