"""Facebook Pages: public comments and Messenger, on one account, with the Messenger reply windows."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import requests

from omnidesk.plugins.config import ConfigSchema, Secret, setting
from omnidesk.plugins.contract import (
    CapabilityError,
    Capabilities,
    ChannelPlugin,
    ConfigInvalid,
    Delivery,
    DemoAccount,
    Feature,
    Headers,
    IdentityKind,
    OutboundReply,
    ParsedItem,
    PermanentSendError,
    RawEvent,
    WebhookRequest,
    WebhookResponse,
)

from . import lookup, parsing, webhook
from .client import DEFAULT_GRAPH_URL, GraphClient

DEFAULT_HANDOFF = "Sorry to hear that — we've sent you a private message."
#: Graph object ids: "<page>_<post>" for posts, "<post>_<comment>" for comments
OBJECT_ID = re.compile(r"^\d+_\d+$")


@dataclass(frozen=True)
class FacebookConfig(ConfigSchema):
    page_id: str = setting(help="the Facebook Page's numeric id")
    page_access_token: Secret = setting(help="a long-lived Page access token (pages_messaging, pages_manage_engagement)")
    app_secret: Secret = setting(help="the Meta app's secret: checks webhook signatures and signs API calls")
    verify_token: Secret = setting(help="the verify token you typed in the Meta app's webhook settings")
    graph_version: str = setting("v23.0", help="Graph API version used for calls, vNN.0")
    graph_url: str = setting(DEFAULT_GRAPH_URL, help="base URL of the Graph API (change only for a proxy)")
    handoff_template: str = setting(DEFAULT_HANDOFF, help="public answer posted when an agent moves a comment to Messenger")
    timeout_s: float = setting(20.0, help="seconds to wait for the Graph API")
    dry_run: bool = setting(False, help="send nothing to Meta; replies are marked sent (demo and trial accounts)")

    def __post_init__(self) -> None:
        problems = []
        # Empty is let through so parse_fixture works without settings; such an account cannot send.
        if self.page_id and not re.fullmatch(r"\d{1,30}", self.page_id):
            problems.append(f"page_id: must be the Page's numeric id, got {self.page_id!r}")
        if not re.fullmatch(r"v\d{1,3}\.\d{1,2}", self.graph_version):
            problems.append(f"graph_version: must look like v23.0, got {self.graph_version!r}")
        if not re.match(r"^https?://[^/\s]+/?$", self.graph_url):
            problems.append(f"graph_url: must be a base URL such as {DEFAULT_GRAPH_URL}, got {self.graph_url!r}")
        if problems:
            raise ConfigInvalid("FacebookConfig: " + "; ".join(problems))


class FacebookChannel(ChannelPlugin[FacebookConfig]):
    kind = "facebook"
    label = "Facebook Page"
    capabilities = Capabilities(
        features=frozenset(
            {Feature.PUSH, Feature.PUBLIC_REPLY, Feature.PRIVATE_REPLY, Feature.HANDOFF, Feature.DELIVERY_LOOKUP}
        ),
        # Messenger's limit; comments allow 8,000 but one limit for both keeps the editor honest.
        max_length=2000,
        reply_window=timedelta(hours=24),
        extended_reply_window=timedelta(days=7),
    )
    config_schema = FacebookConfig
    event_types = {
        "comment": "a person's comment or reply on a Page post → a public message, one thread per post and person",
        "visitor_post": "a person's post on the Page → a public message (its comments join the same thread)",
        "mention": "the Page @-mentioned in a post or comment → a public message",
        "feed_change": "a comment or visitor post edited, hidden, unhidden or removed → that message is updated",
        "page_post": "the Page's own posts and comments (our replies included) → ignored, counted",
        "reaction": "likes and reactions on posts and comments → ignored, counted",
        "rating": "recommendations (ratings) and comments on them → ignored, counted",
        "message": "a Messenger message: text, attachments as links, stickers, quick replies, replies → a private message",
        "postback": "a Messenger button tap → a private message (it restarts the 24-hour window)",
        "message_change": "a Messenger message edited or unsent → that message is updated",
        "echo": "the Page's own Messenger messages echoed back → ignored",
        "read": "Messenger read receipt (watermark) → our replies up to it are marked read",
        "delivery": "Messenger delivery receipt → our replies are marked delivered",
        "messenger_reaction": "an emoji reaction to a Messenger message → ignored, counted",
        "referral": "a person arrived through an m.me link, ad or QR code → ignored until they write",
        "optin": "a person opted in through a plugin → ignored until they write",
        "policy_enforcement": "Meta blocked or unblocked the Page's messaging → ignored, the reason is recorded",
        "handover": "conversation control passed between apps (handover protocol) → ignored",
        "standby": "an event in a conversation another app controls → ignored, left to that app",
        "unknown": "a part of a batch we do not read (new Meta fields) → ignored beside the parts we do",
    }

    def __init__(
        self, config: FacebookConfig, *, account_slug: str = "", session: requests.Session | None = None
    ) -> None:
        super().__init__(config, account_slug=account_slug)
        self._session = session
        self._client: GraphClient | None = None

    # --- inbound ----------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> WebhookResponse | None:
        return webhook.verify(
            request, app_secret=self.config.app_secret.reveal(), verify_token=self.config.verify_token.reveal()
        )

    def parse(self, raw: RawEvent) -> list[ParsedItem]:
        return parsing.parse_payload(parsing.load(raw.body))

    # --- outbound ---------------------------------------------------------------------

    def check_reply(self, reply: OutboundReply) -> None:
        super().check_reply(reply)  # length, visibility, the 24 h / 7 day windows
        if not self.config.page_id:
            raise PermanentSendError(f"account {self.account_slug or '?'} has no page_id set, so it cannot send")
        route, _ = self._route(reply)
        if route == "messenger" and reply.to.kind is not IdentityKind.FACEBOOK:
            raise PermanentSendError(f"Messenger replies go to a Facebook identity, not {reply.to.kind.value}")
        page = reply.to.namespace
        if reply.to.kind is IdentityKind.FACEBOOK and page and page != self.config.page_id:
            raise PermanentSendError(
                f"this person wrote to Page {page}; account {self.account_slug or '?'} serves Page {self.config.page_id}"
            )

    def send(self, reply: OutboundReply) -> Delivery:
        self.check_reply(reply)
        route, target = self._route(reply)
        if self.config.dry_run:
            return Delivery(external_id=f"dry-run-{reply.idempotency_key}", sent_at=datetime.now(timezone.utc))
        client = self._graph()
        if route == "comment":
            result = client.post(f"{target}/comments", {"message": reply.text})
            return Delivery(external_id=_id(result, "id", reply), thread_key=reply.thread_key)
        if route in ("private_comment", "private_post"):
            # Meta's private reply: one Messenger message to whoever wrote the comment or post.
            recipient = {"comment_id" if route == "private_comment" else "post_id": target}
            result = client.post("me/messages", {"recipient": recipient, "message": {"text": reply.text}})
            psid = result.get("recipient_id")
            return Delivery(external_id=_id(result, "message_id", reply), thread_key=f"psid:{psid}" if psid else "")
        form: dict[str, object] = {"recipient": {"id": target}, "message": {"text": reply.text}}
        if self.check_window(reply):
            form.update(messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
        else:
            form["messaging_type"] = "RESPONSE"
        result = client.post("me/messages", form)
        return Delivery(external_id=_id(result, "message_id", reply), thread_key=reply.thread_key)

    def delivery_find(self, reply: OutboundReply, *, since: datetime) -> Delivery | None:
        """Comments and Messenger messages of the Page since `since` are looked up (see lookup.py).

        No check_reply here: a reply sent just before its window closed must still be found after.
        """
        route, target = self._route(reply)
        if self.config.dry_run:
            raise CapabilityError("a dry-run account sends nothing, so there is nothing to look up")
        if route in ("private_comment", "private_post"):
            # Meta takes one private reply per comment or post: a repeat is refused, never delivered twice.
            raise CapabilityError("a private reply to a comment cannot be looked up; Meta refuses a second one")
        if route == "comment":
            return lookup.comment_find(self._graph(), self.config.page_id, target, reply, since=since)
        return lookup.message_find(self._graph(), self.config.page_id, target, reply, since=since)

    def _route(self, reply: OutboundReply) -> tuple[str, str]:
        """Where a reply goes: a comment thread, a private reply to a comment/post, or Messenger."""
        key, answered = reply.thread_key, reply.in_reply_to
        if key.startswith("psid:"):
            if reply.visibility == "public":
                raise CapabilityError("a Messenger conversation is private: it cannot get a public reply")
            return "messenger", key[5:] or reply.to.value
        post = key[5:] if key.startswith("post:") else ""
        target = answered or post
        if post or OBJECT_ID.match(answered):
            if not target:
                raise CapabilityError("a reply on a Page post needs the comment or post it answers")
            if reply.visibility == "public":
                return "comment", target
            return ("private_post" if target == post else "private_comment"), target
        if reply.visibility == "public":
            raise CapabilityError("a public Facebook reply must answer a comment or post")
        return "messenger", reply.to.value

    def _graph(self) -> GraphClient:
        if self._client is None:
            self._client = GraphClient(
                access_token=self.config.page_access_token.reveal(),
                app_secret=self.config.app_secret.reveal(),
                version=self.config.graph_version,
                graph_url=self.config.graph_url,
                timeout_s=self.config.timeout_s,
                session=self._session,
            )
        return self._client

    # --- demo -------------------------------------------------------------------------

    @classmethod
    def demo_account(cls) -> DemoAccount:
        return DemoAccount(
            name="Demo Facebook Page",
            config={"page_id": DEMO_PAGE, "dry_run": True},
            secrets={
                "page_access_token": "demo-page-token-not-real",
                "app_secret": os.environ.get("OMNIDESK_DEMO_FACEBOOK_APP_SECRET", "demo-app-secret"),
                "verify_token": "demo-verify-token",
            },
        )

    def demo_events(self) -> list[WebhookRequest | RawEvent]:
        from .demo import demo_payloads

        secret = self.config.app_secret.reveal()
        return [
            WebhookRequest(
                method="POST", url="", query={}, body=body,
                headers=Headers({"Content-Type": "application/json", webhook.SIGNATURE_HEADER: webhook.sign(secret, body)}),
            )
            for body in (json.dumps(p).encode() for p in demo_payloads(self.config.page_id, datetime.now(timezone.utc)))
        ]


DEMO_PAGE = "100000000000001"


def _id(result: dict[str, object], key: str, reply: OutboundReply) -> str:
    value = result.get(key) or result.get("id")
    return str(value) if value else f"unconfirmed-{reply.idempotency_key}"
