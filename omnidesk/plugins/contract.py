"""The channel plugin contract: what every channel adapter is and what it hands the core.

A plugin is a `ChannelPlugin` subclass registered under the entry-point group
`omnidesk.channels`. It turns vendor bytes into the frozen dataclasses below and nothing
else: no database, no Django, no `dict[str, Any]` past `parse()`. The core decides
everything that follows (customers, threading, routing, SLA).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar, Generic, Literal, TypeVar

from .config import ConfigSchema
from .errors import (  # noqa: F401  (re-exported: plugins import everything from here)
    AuthorizationRequired,
    CapabilityError,
    ConfigInvalid,
    MalformedPayload,
    PermanentSendError,
    PluginError,
    ReplyTooLong,
    ReplyWindowClosed,
    RetryableSendError,
    SendError,
    SignatureInvalid,
    UnsupportedEvent,
)

Visibility = Literal["public", "private"]


class Feature(enum.Enum):
    """What a channel can do, declared as data, never probed with hasattr."""

    PUBLIC_REPLY = "public_reply"
    PRIVATE_REPLY = "private_reply"
    #: move a public conversation to a private one on the same ticket (tweet → DM)
    HANDOFF = "handoff"
    ATTACHMENTS = "attachments"
    HTML = "html"
    #: the plugin receives webhooks (implements `verify`)
    PUSH = "push"
    #: the plugin is polled (implements `fetch`)
    PULL = "pull"
    #: the plugin can look up whether a reply already reached the channel (implements `delivery_find`)
    DELIVERY_LOOKUP = "delivery_lookup"


@dataclass(frozen=True)
class Capabilities:
    features: frozenset[Feature]
    #: longest reply the channel accepts, in the units of `ChannelPlugin.measure`
    max_length: int | None = None
    length_unit: str = "characters"
    #: time after the customer's last message within which a private reply may be sent
    reply_window: timedelta | None = None
    #: a longer window that needs a tag (Messenger HUMAN_AGENT: 7 days)
    extended_reply_window: timedelta | None = None
    max_attachment_bytes: int | None = None

    @property
    def can_send(self) -> bool:
        return bool({Feature.PUBLIC_REPLY, Feature.PRIVATE_REPLY} & self.features)

    def allows(self, visibility: Visibility) -> bool:
        wanted = Feature.PUBLIC_REPLY if visibility == "public" else Feature.PRIVATE_REPLY
        return wanted in self.features


# --- webhook requests (Django-free so plugins stay testable without a server) -----------


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only HTTP headers."""

    def __init__(self, items: Mapping[str, str] | Sequence[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._data = {k.lower(): (k, v) for k, v in pairs}

    def __getitem__(self, key: str) -> str:
        return self._data[key.lower()][1]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return (k for k, _ in self._data.values())

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


@dataclass(frozen=True)
class WebhookRequest:
    method: str
    #: the full URL as the sender signed it (Twilio signs the URL)
    url: str
    headers: Headers
    query: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class WebhookResponse:
    """A handshake answered by the plugin itself (X CRC, Meta hub.challenge); nothing is stored."""

    status: int
    body: bytes
    content_type: str = "text/plain"


@dataclass(frozen=True)
class RawEvent:
    """Vendor bytes exactly as received or fetched; committed to the database before anything else."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    #: stable key of this item at its source (IMAP folder/UIDVALIDITY/UID); empty = hash of the body
    source_key: str = ""

    @property
    def dedupe_key(self) -> str:
        return self.source_key or "sha256:" + hashlib.sha256(self.body).hexdigest()


@dataclass(frozen=True)
class FetchResult:
    items: tuple[RawEvent, ...]
    #: opaque to the core; stored only after every item above is committed
    cursor: str
    #: the plugin asks not to be polled again before this many seconds (rate limits)
    retry_after: float | None = None


# --- what parse() returns ---------------------------------------------------------------


class IdentityKind(str, enum.Enum):
    EMAIL = "email"
    PHONE = "phone"
    TWITTER = "twitter"
    FACEBOOK = "facebook"
    #: an id in another system that posts to a generic API channel account
    EXTERNAL = "external"


@dataclass(frozen=True)
class IdentityRef:
    kind: IdentityKind
    value: str
    #: where the value is unique: "" for global ids (email, phone, X user id), the page id for
    #: Facebook page-scoped ids, the account slug for a generic API channel's ids
    namespace: str = ""


@dataclass(frozen=True)
class Author:
    identity: IdentityRef
    display_name: str = ""
    #: reach as the platform reported it when the message was sent (None = not known)
    followers: int | None = None
    verified: bool | None = None
    #: further identities the channel vouches for (an email or phone in an API payload);
    #: the core links them to the same customer
    also: tuple[IdentityRef, ...] = ()


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes
    #: for inline images referenced as cid: in the html
    content_id: str = ""
    inline: bool = False


@dataclass(frozen=True)
class CallDetails:
    direction: Literal["inbound", "outbound", "internal"]
    duration_s: int = 0
    missed: bool = False
    answered_by: str = ""
    recording_url: str = ""
    notes: str = ""


@dataclass(frozen=True)
class InboundMessage:
    #: idempotency key: unique within one channel account, stable across re-deliveries
    external_id: str
    #: one of the plugin's declared `event_types`
    event_type: str
    #: the channel's own conversation key (tweet conversation_id, DM conversation, email root)
    thread_key: str
    author: Author
    text: str
    visibility: Visibility = "private"
    subject: str = ""
    #: customer-supplied HTML; untrusted (the core sanitizes it again before storing)
    html: str = ""
    #: external ids this message answers, most specific first (In-Reply-To, References reversed)
    references: tuple[str, ...] = ()
    #: a ticket number the customer quoted (e.g. "[#123]" in a subject); checked by the core
    ticket_ref: int | None = None
    #: when the customer sent it, by the platform's own clock (aware datetime)
    sent_at: datetime | None = None
    #: auto-replies, out-of-office, bulk mail: never answered automatically
    automated: bool = False
    attachments: tuple[Attachment, ...] = ()
    call: CallDetails | None = None
    #: small string facts worth keeping (message-id header, permalink)
    metadata: tuple[tuple[str, str], ...] = ()


DeliveryState = Literal["sent", "delivered", "read", "failed"]


@dataclass(frozen=True)
class DeliveryUpdate:
    """News about a message WE sent: delivered, read, bounced.

    Either one message by `external_id`, or — for channels that report a watermark
    (Messenger `read.watermark`) — every message to `recipient` sent at or before `watermark`.
    """

    external_id: str
    state: DeliveryState
    reason: str = ""
    permanent: bool = False
    at: datetime | None = None
    recipient: IdentityRef | None = None
    watermark: datetime | None = None


@dataclass(frozen=True)
class MessageUpdate:
    """A customer's message changed at the source: edited, hidden or removed."""

    external_id: str
    change: Literal["edited", "hidden", "unhidden", "removed"]
    text: str = ""
    at: datetime | None = None


@dataclass(frozen=True)
class Ignored:
    """An event that is not a ticket (like, follow, typing): recorded so it can be counted."""

    event_type: str
    reason: str


@dataclass(frozen=True)
class Invalid:
    """One bad record inside an otherwise good batch (a CDR row): reported, the rest still applied."""

    where: str
    reason: str


StatusLevel = Literal["investigating", "identified", "monitoring", "resolved"]


@dataclass(frozen=True)
class StatusSignal:
    """A monitoring or status-page incident (not a customer): the core opens, updates or resolves an incident."""

    #: idempotency key of this one update
    external_id: str
    #: the sender's id of the incident; every update of one incident carries the same key
    incident_key: str
    status: StatusLevel
    title: str
    text: str = ""
    #: affected components as the sender names them ("Mobile app", "Payments")
    components: tuple[str, ...] = ()
    at: datetime | None = None


ParsedItem = InboundMessage | DeliveryUpdate | MessageUpdate | Ignored | Invalid | StatusSignal


# --- what send() takes and returns --------------------------------------------------------


@dataclass(frozen=True)
class OutboundReply:
    #: our own id for this reply; plugins pass it on where the channel dedupes (Idempotency-Key)
    idempotency_key: str
    to: IdentityRef
    text: str
    visibility: Visibility
    ticket_ref: int
    subject: str = ""
    html: str = ""
    thread_key: str = ""
    #: external id of the customer message being answered (tweet id, comment id, Message-ID)
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    #: when the customer last wrote on this channel (reply windows count from here)
    customer_last_message_at: datetime | None = None
    attachments: tuple[Attachment, ...] = ()
    automated: bool = False
    #: the external id the channel should use for the message, where we choose it (email Message-ID)
    proposed_external_id: str = ""


@dataclass(frozen=True)
class Delivery:
    external_id: str
    sent_at: datetime | None = None
    #: the conversation the customer's answer will arrive in, when it differs (comment → Messenger)
    thread_key: str = ""
    #: who the channel actually delivered to, when that is a new identity of the same person
    #: (a Facebook private reply reaches a Messenger id): the core links it to the customer
    recipient: IdentityRef | None = None


@dataclass(frozen=True)
class DemoAccount:
    """What `make run` needs to connect a demo account of a plugin on a bare laptop."""

    name: str
    config: Mapping[str, object]
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)


C = TypeVar("C", bound=ConfigSchema)


class ChannelPlugin(Generic[C]):
    """One channel. Subclass, declare the class attributes, implement what your features need.

    An instance serves one connected account and holds its validated config.
    """

    #: short stable name, the entry-point name too ("email", "twitter")
    kind: ClassVar[str]
    #: shown to people ("Email (IMAP/SMTP)")
    label: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    #: the dataclass that validates one account's settings
    config_schema: ClassVar[type[ConfigSchema]]
    #: every event type `parse` may report, with what becomes of it
    event_types: ClassVar[Mapping[str, str]]

    def __init__(self, config: C, *, account_slug: str = "") -> None:
        self.config = config
        self.account_slug = account_slug

    # push ----------------------------------------------------------------------------
    def verify(self, request: WebhookRequest) -> WebhookResponse | None:
        """Check a webhook; raise SignatureInvalid, or answer a handshake, or return None to store it."""
        raise SignatureInvalid(f"the {self.kind} channel does not receive webhooks")

    # pull ----------------------------------------------------------------------------
    def fetch(self, cursor: str | None) -> FetchResult:
        """Return new raw items after `cursor` and the cursor to store once they are committed."""
        raise NotImplementedError(f"the {self.kind} channel is not polled")

    # both ----------------------------------------------------------------------------
    def parse(self, raw: RawEvent) -> list[ParsedItem]:
        """Pure: vendor bytes → normalized items. Raise MalformedPayload or UnsupportedEvent."""
        raise NotImplementedError

    def send(self, reply: OutboundReply) -> Delivery:
        """Deliver a reply; raise a SendError subclass that says whether a retry can help."""
        raise CapabilityError(f"the {self.kind} channel cannot send replies")

    def delivery_find(self, reply: OutboundReply, *, since: datetime) -> Delivery | None:
        """Did `reply` already reach the channel (at or after `since`)? Its Delivery, or None: not there.

        Asked instead of resending when a sender died mid-send, for channels without an
        idempotency key. Raise RetryableSendError when the lookup fails (the reply waits, it is
        never sent blindly) and CapabilityError for a reply that cannot be looked up (it is sent again).
        """
        raise CapabilityError(f"the {self.kind} channel cannot tell whether a reply reached it")

    # helpers plugins may override ------------------------------------------------------
    @classmethod
    def demo_account(cls) -> DemoAccount | None:
        """Settings of the `demo-<kind>` account that `make run` seeds (None: no demo account)."""
        return None

    def demo_events(self) -> list[WebhookRequest | RawEvent]:
        """Sample traffic for `make run`: webhook requests (signed, POSTed to /hooks/<slug>/) or raw items."""
        return []

    @classmethod
    def measure(cls, text: str) -> int:
        """Length of a reply as the channel counts it (X overrides with weighted counting)."""
        return len(text)

    def check_reply(self, reply: OutboundReply) -> None:
        """Refuse, before any network call, a reply the declared capabilities rule out."""
        caps = self.capabilities
        if not caps.can_send:
            raise CapabilityError(f"the {self.label} channel cannot send replies")
        if not caps.allows(reply.visibility):
            raise CapabilityError(f"the {self.label} channel cannot send {reply.visibility} replies")
        if caps.max_length is not None:
            length = self.measure(reply.text)
            if length > caps.max_length:
                raise ReplyTooLong(
                    f"the reply is {length} {caps.length_unit} long; {self.label} allows {caps.max_length}",
                    length=length,
                    limit=caps.max_length,
                )
        if reply.attachments and Feature.ATTACHMENTS not in caps.features:
            raise CapabilityError(f"the {self.label} channel cannot send attachments")
        if caps.max_attachment_bytes is not None:
            for att in reply.attachments:
                if len(att.content) > caps.max_attachment_bytes:
                    raise CapabilityError(
                        f"the attachment {att.filename!r} is {len(att.content)} bytes; "
                        f"{self.label} allows {caps.max_attachment_bytes}"
                    )
        self.check_window(reply)

    def check_window(self, reply: OutboundReply, now: datetime | None = None) -> bool:
        """Apply the declared reply windows; True when the extended (tagged) window is needed.

        Raises ReplyWindowClosed past the last window. Counts from the customer's last message.
        """
        caps = self.capabilities
        if reply.visibility != "private" or caps.reply_window is None or reply.customer_last_message_at is None:
            return False
        now = now or datetime.now(reply.customer_last_message_at.tzinfo)
        age = now - reply.customer_last_message_at
        if age <= caps.reply_window:
            return False
        last = caps.extended_reply_window or caps.reply_window
        if age <= last:
            return True
        raise ReplyWindowClosed(
            f"the customer last wrote {_ago(age)} ago; {self.label} allows replies for {_ago(last)} after that"
        )


def _ago(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.0f} days" if hours >= 48 else f"{hours:.0f} hours"


def hmac_sha256(secret: str | bytes, body: bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, body, hashlib.sha256).digest()


def signatures_match(expected: str, given: str) -> bool:
    """Constant-time comparison of two signature strings."""
    return hmac.compare_digest(expected.encode(), given.encode())
