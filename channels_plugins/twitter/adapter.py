"""The X (Twitter) channel: mentions and DMs in, tweets and DMs out, public → private handoff."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from omnidesk.plugins.config import ConfigSchema, Secret, setting
from omnidesk.plugins.contract import (
    Capabilities,
    CapabilityError,
    ChannelPlugin,
    Delivery,
    DemoAccount,
    Feature,
    FetchResult,
    Headers,
    IdentityKind,
    OutboundReply,
    ParsedItem,
    PermanentSendError,
    RawEvent,
    ReplyTooLong,
    SendError,
    SignatureInvalid,
    WebhookRequest,
    WebhookResponse,
)

from omnidesk.plugins.payloads import content_type_check

from . import lookup, parsing, webhook
from .client import DEFAULT_HOST, RateLimited, XClient
from .textlength import split_thread, weighted_length

MAX_TWEET = 280
#: X's limit for one DM, in characters
MAX_DM = 10_000
#: the longest numbered thread an opted-in account may post for one reply
MAX_THREAD_PARTS = 10
#: pages of mentions read in one fetch; the rest follow on the next poll (the cursor keeps the place)
MAX_PAGES = 5
#: how long the poller waits before asking again when polling is switched off
DISABLED_RETRY_S = 3600.0


@dataclass(frozen=True)
class TwitterConfig(ConfigSchema):
    user_id: str = setting(help="the account's numeric X user id (its own tweets and DMs are not tickets)")
    consumer_key: Secret = setting(help="the app's API key (OAuth 1.0a consumer key)")
    consumer_secret: Secret = setting(help="the app's API key secret; also signs webhooks and the CRC answer")
    access_token: Secret = setting(help="the account's OAuth 1.0a access token (read, write and DM permission)")
    access_token_secret: Secret = setting(help="the account's OAuth 1.0a access token secret")
    bearer_token: Secret | None = setting(None, help="optional app bearer token (not needed for user-context calls)")
    username: str = setting("", help="the account's @handle, without @ (shown to agents)")
    poll_enabled: bool = setting(True, help="poll mentions and DMs (off: the Account Activity webhook only)")
    poll_interval_s: float = setting(60.0, help="seconds between polls; X prices by volume, so not too often")
    poll_dms: bool = setting(True, help="also poll DMs (needs the app's Direct Message permission)")
    handoff_template: str = setting(
        "Sorry about this — we've sent you a DM.", help="the public acknowledgement posted when a ticket moves to DM"
    )
    split_long_replies: bool = setting(
        False, help="post a public reply over 280 as a numbered thread '(1/3)' instead of refusing it"
    )
    api_base_url: str = setting(DEFAULT_HOST, help="X API base URL (change only for a proxy or a test server)")
    timeout_s: float = setting(15.0, help="seconds to wait for X")


@dataclass
class _Cursor:
    """Where polling stands. Mentions page newest-first under `since_id`; a burst longer than
    MAX_PAGES is finished on the next poll before `since_id` moves."""

    mentions_since_id: str | None = None
    mentions_next_token: str | None = None
    mentions_pending_newest: str | None = None
    dm_newest_id: str | None = None

    @classmethod
    def load(cls, value: str | None) -> _Cursor:
        try:
            data = json.loads(value) if value else {}
        except ValueError:
            data = {}
        data = data if isinstance(data, dict) else {}
        return cls(**{k: str(v) for k, v in data.items() if k in cls.__dataclass_fields__ and v})

    def dump(self) -> str:
        return json.dumps({k: v for k, v in vars(self).items() if v}, sort_keys=True)


class TwitterChannel(ChannelPlugin[TwitterConfig]):
    kind = "twitter"
    label = "X (Twitter)"
    capabilities = Capabilities(
        features=frozenset({Feature.PUSH, Feature.PULL, Feature.PUBLIC_REPLY, Feature.PRIVATE_REPLY, Feature.HANDOFF,
                            Feature.DELIVERY_LOOKUP}),
        max_length=MAX_TWEET,
        length_unit="weighted characters",
    )
    config_schema = TwitterConfig
    event_types = {
        "mention": "a tweet mentioning or answering the account (polled, or Account Activity tweet_create_events) "
        "→ a public message threaded by conversation; the account's own tweets → ignored",
        "direct_message": "a DM to the account (polled dm_events, or Account Activity direct_message_events) "
        "→ a private message threaded by DM conversation; DMs we sent and join/leave events → ignored",
        "retweet": "a retweet → ignored (counted, never a ticket)",
        "favorite": "a like (favorite_events) → ignored",
        "follow": "a follow or unfollow (follow_events) → ignored",
        "typing": "a typing indicator (direct_message_indicate_typing_events) → ignored",
        "read": "the customer read our DMs (direct_message_mark_read_events) → our DMs to them up to then "
        "marked read; our own reads → ignored",
        "tweet_delete": "the customer deleted a tweet (tweet_delete_events) → the message is marked removed",
    }

    # push ----------------------------------------------------------------------------
    def verify(self, request: WebhookRequest) -> WebhookResponse | None:
        secret = self.config.consumer_secret.reveal()
        if request.method.upper() == "GET":
            token = request.query.get("crc_token", "")
            if not token:
                raise SignatureInvalid("a GET must carry crc_token (X's Account Activity CRC check)")
            return webhook.crc_response(secret, token)
        content_type_check(request.headers)
        webhook.verify_signature(secret, request.body, request.headers.get(webhook.SIGNATURE_HEADER, ""))
        return None

    # pull ----------------------------------------------------------------------------
    def fetch(self, cursor: str | None) -> FetchResult:
        if not self.config.poll_enabled:
            return FetchResult(items=(), cursor=cursor or "", retry_after=DISABLED_RETRY_S)
        state = _Cursor.load(cursor)
        before = state.dump()
        items: list[RawEvent] = []
        retry_after: float | None = None
        client = self._client()
        try:
            self._fetch_mentions(client, state, items)
            if self.config.poll_dms:
                self._fetch_dms(client, state, items)
        except RateLimited as exc:
            retry_after = exc.retry_after
        after = state.dump()
        return FetchResult(items=tuple(items), cursor=(cursor or "") if after == before else after, retry_after=retry_after)

    def _fetch_mentions(self, client: XClient, state: _Cursor, items: list[RawEvent]) -> None:
        for _ in range(MAX_PAGES):
            page = client.mentions(self.config.user_id, since_id=state.mentions_since_id, pagination_token=state.mentions_next_token)
            meta = page.data.get("meta") if isinstance(page.data.get("meta"), dict) else {}
            newest, oldest, token = (str(meta.get(k) or "") or None for k in ("newest_id", "oldest_id", "next_token"))
            if state.mentions_next_token is None:
                state.mentions_pending_newest = newest or state.mentions_pending_newest
            if page.data.get("data"):
                items.append(RawEvent(body=page.body, headers={"x-omnidesk-endpoint": "mentions"},
                                      source_key=f"mentions:{newest}:{oldest}"))
            if token:
                state.mentions_next_token = token
            else:
                state.mentions_since_id = state.mentions_pending_newest or state.mentions_since_id
                state.mentions_next_token = state.mentions_pending_newest = None
            if page.exhausted_for is not None:
                raise RateLimited(page.exhausted_for)
            if not token:
                return

    def _fetch_dms(self, client: XClient, state: _Cursor, items: list[RawEvent]) -> None:
        # dm_events has no since_id: read the newest page, store it only when it has news
        # (older events in it are duplicates the core recognizes by their ids).
        page = client.dm_events()
        events = page.data.get("data")
        newest = str(events[0].get("id") or "") if isinstance(events, list) and events and isinstance(events[0], dict) else ""
        if newest and newest != state.dm_newest_id:
            items.append(RawEvent(body=page.body, headers={"x-omnidesk-endpoint": "dm_events"}, source_key=f"dm_events:{newest}"))
            state.dm_newest_id = newest
        if page.exhausted_for is not None:
            raise RateLimited(page.exhausted_for)

    # both ----------------------------------------------------------------------------
    def parse(self, raw: RawEvent) -> list[ParsedItem]:
        return parsing.parse_payload(parsing.load(raw.body), self.config.user_id)

    @classmethod
    def measure(cls, text: str) -> int:
        return weighted_length(text)

    def check_reply(self, reply: OutboundReply) -> None:
        caps = self.capabilities
        if not caps.allows(reply.visibility):
            raise CapabilityError(f"the {self.label} channel cannot send {reply.visibility} replies")
        if reply.attachments:
            raise CapabilityError(f"the {self.label} channel cannot send attachments yet")
        if not reply.text.strip():
            raise PermanentSendError("an empty reply cannot be posted on X")
        if reply.visibility == "private":
            if reply.to.kind != IdentityKind.TWITTER:
                raise CapabilityError(f"a DM goes to an X user id, not to {reply.to.kind.value} {reply.to.value}")
            if len(reply.text) > MAX_DM:
                raise ReplyTooLong(
                    f"the DM is {len(reply.text)} characters long; X allows {MAX_DM}", length=len(reply.text), limit=MAX_DM
                )
            return
        self._public_parts(reply.text)

    def _public_parts(self, text: str) -> list[str]:
        length = self.measure(text)
        if length <= MAX_TWEET:
            return [text]
        hint = "URLs count 23, CJK characters and emoji 2"
        if not self.config.split_long_replies:
            raise ReplyTooLong(
                f"the reply is {length} weighted characters long; X allows {MAX_TWEET} ({hint}). Shorten it, move "
                "to DM, or let the account split long replies into a thread",
                length=length, limit=MAX_TWEET,
            )
        parts = split_thread(text, MAX_TWEET)
        if len(parts) > MAX_THREAD_PARTS:
            raise ReplyTooLong(
                f"the reply is {length} weighted characters long: {len(parts)} tweets, more than the "
                f"{MAX_THREAD_PARTS} a thread may have", length=length, limit=MAX_TWEET * MAX_THREAD_PARTS,
            )
        return parts

    def send(self, reply: OutboundReply) -> Delivery:
        self.check_reply(reply)
        client = self._client()
        now = datetime.now(timezone.utc)
        if reply.visibility == "private":
            event_id, conversation = client.create_direct_message(reply.to.value, reply.text)
            return Delivery(external_id=event_id, sent_at=now, thread_key=f"dm:{conversation}" if conversation else "")
        parts = self._public_parts(reply.text)
        posted: list[str] = []
        previous = reply.in_reply_to or None
        for part in parts:
            try:
                previous = client.create_tweet(part, in_reply_to=previous)
            except SendError as exc:
                if not posted:
                    raise
                # Retrying would post the first parts again (X refuses duplicates anyway).
                raise PermanentSendError(
                    f"the thread stopped after part {len(posted)} of {len(parts)} "
                    f"(posted: {', '.join(posted)}): {exc.message}"
                ) from None
            posted.append(previous)
        return Delivery(external_id=posted[0], sent_at=now)

    def delivery_find(self, reply: OutboundReply, *, since: datetime) -> Delivery | None:
        """X has no idempotency key: what the account posted since `since` is looked up (see lookup.py)."""
        self.check_reply(reply)
        if reply.visibility == "private":
            return lookup.dm_find(self._client(), self.config.user_id, reply, since=since)
        return lookup.thread_find(self._client(), self.config.user_id, reply, self._public_parts(reply.text), since=since)

    def _client(self) -> XClient:
        c = self.config
        return XClient(
            consumer_key=c.consumer_key.reveal(),
            consumer_secret=c.consumer_secret.reveal(),
            access_token=c.access_token.reveal(),
            access_token_secret=c.access_token_secret.reveal(),
            bearer_token=c.bearer_token.reveal() if c.bearer_token else None,
            base_url=c.api_base_url,
            timeout_s=c.timeout_s,
        )

    # demo ----------------------------------------------------------------------------
    @classmethod
    def demo_account(cls) -> DemoAccount:
        return DemoAccount(
            name="Demo X account",
            # No internet under `make run`: polling is off, and replies go to a closed local
            # port (they fail and retry in the outbox) instead of api.twitter.com.
            config={"user_id": DEMO_USER_ID, "username": "omnidesk_demo", "poll_enabled": False,
                    "api_base_url": "http://127.0.0.1:9"},
            secrets={"consumer_key": "demo-consumer-key", "consumer_secret": "demo-consumer-secret",
                     "access_token": "demo-access-token", "access_token_secret": "demo-access-token-secret"},
        )

    def demo_events(self) -> list[WebhookRequest | RawEvent]:
        now = datetime.now(timezone.utc)
        base = int(now.timestamp() * 1000) << 22  # snowflake-like ids, new on every run
        customer = {"id": "1500000000000000042", "id_str": "1500000000000000042", "name": "Rosa Parks",
                    "screen_name": "rosa_commutes", "followers_count": 48210, "verified": True}
        tweet_id = str(base + 1)
        mention = {
            "for_user_id": self.config.user_id,
            "tweet_create_events": [{
                "created_at": (now - timedelta(minutes=20)).strftime("%a %b %d %H:%M:%S +0000 %Y"),
                "id": int(tweet_id), "id_str": tweet_id,
                "text": "@omnidesk_demo third cancelled train this week and your app still says 'on time' &gt;:(",
                "in_reply_to_status_id_str": None, "user": customer, "entities": {"urls": []},
            }],
        }
        dm = {
            "for_user_id": self.config.user_id,
            "direct_message_events": [{
                "type": "message_create", "id": str(base + 2),
                "created_timestamp": str(int((now - timedelta(minutes=5)).timestamp() * 1000)),
                "message_create": {"target": {"recipient_id": self.config.user_id}, "sender_id": customer["id_str"],
                                   "message_data": {"text": "Booking ref is QX7781, the 08:12 from Leeds.", "entities": {}}},
            }],
            "users": {customer["id_str"]: {k: v for k, v in customer.items() if k != "id_str"}},
        }
        secret = self.config.consumer_secret.reveal()
        out: list[WebhookRequest | RawEvent] = []
        for payload in (mention, dm):
            body = json.dumps(payload).encode()
            out.append(WebhookRequest(
                method="POST", url="", query={}, body=body,
                headers=Headers({"Content-Type": "application/json", webhook.SIGNATURE_HEADER: webhook.sign(secret, body)}),
            ))
        return out


DEMO_USER_ID = "1000000000000000001"
