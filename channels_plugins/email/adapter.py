"""The email channel: IMAP (IDLE, polling fallback) in, SMTP out, threading by Message-ID."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from email import message_from_bytes
from typing import Literal

from omnidesk.plugins.config import ConfigSchema, Secret, setting
from omnidesk.plugins.contract import (
    Author,
    Capabilities,
    ChannelPlugin,
    ConfigInvalid,
    Delivery,
    DeliveryUpdate,
    DemoAccount,
    Feature,
    FetchResult,
    IdentityKind,
    IdentityRef,
    Ignored,
    InboundMessage,
    MalformedPayload,
    OutboundReply,
    ParsedItem,
    PermanentSendError,
    PluginError,
    RawEvent,
    UnsupportedEvent,
    WebhookRequest,
)

from . import automated, msgids, parsing, quoting
from .client import ConnectionLost, ImapSession, Login, smtp_send
from .imap_fetch import FetchSettings, fetch_once
from .outbound import build_message

Security = Literal["tls", "starttls", "none"]
_FORWARDED = re.compile(r"^\s*(fwd?|wg|tr|rv|enc|vs|vl|doorst)\s*:", re.I)


@dataclass(frozen=True)
class EmailConfig(ConfigSchema):
    address: str = setting(help="the support address: From of replies, and how our own mail is recognized")
    display_name: str = setting("", help="name shown with the address on replies")
    imap_host: str = setting("", help="IMAP server host name")
    imap_port: int = setting(0, help="IMAP port (0 = 993 with tls, 143 otherwise)")
    imap_security: Security = setting("tls", help="tls (implicit, port 993), starttls, or none (tests only)")
    username: str = setting("", help="IMAP/SMTP login (empty = the address)")
    auth: Literal["password", "xoauth2"] = setting("password", help="password, or xoauth2 (Gmail, Microsoft 365)")
    password: Secret | None = setting(None, help="IMAP password (auth=password)")
    oauth2_token: Secret | None = setting(None, help="OAuth 2 access token (auth=xoauth2)")
    folders: tuple[str, ...] = setting(("INBOX",), help="folders to read; IDLE watches the first")
    ack: Literal["leave", "seen", "keyword", "move"] = setting(
        "seen", help="after a mail is stored: leave it, set \\Seen, set ack_keyword, or move it to ack_folder"
    )
    ack_keyword: str = setting("$OmnideskImported", help="IMAP keyword set on imported mail (ack=seen or keyword)")
    ack_folder: str = setting("Imported", help="folder imported mail is moved to (ack=move; created if missing)")
    import_existing: bool = setting(True, help="on the first poll, import mail already in the folders")
    idle: bool = setting(True, help="wait for new mail with IMAP IDLE where the server offers it")
    idle_timeout_s: float = setting(300.0, help="re-issue IDLE after this many seconds (under 29 minutes)")
    poll_interval_s: float = setting(60.0, help="seconds between polls when IDLE is off or not offered")
    fetch_batch: int = setting(200, help="most mails handed over per fetch")
    timeout_s: float = setting(30.0, help="socket timeout for IMAP and SMTP commands")
    enabled_fetch: bool = setting(True, help="false: never connect to IMAP (demo accounts, send-only)")
    smtp_host: str = setting("", help="SMTP server host name (empty = this account cannot send)")
    smtp_port: int = setting(0, help="SMTP port (0 = 465 with tls, 587 with starttls, 25 with none)")
    smtp_security: Security = setting("starttls", help="tls, starttls, or none (tests only)")
    smtp_username: str = setting("", help="SMTP login (empty = username, or the address)")
    smtp_password: Secret | None = setting(None, help="SMTP password (empty = the IMAP password)")
    ticket_ref_prefix: str = setting("#", help="ticket tag in subjects: '#' gives [#123]")

    def __post_init__(self) -> None:
        problems = []
        if "@" not in self.address and self.address:
            problems.append(f"address: {self.address!r} is not an email address")
        if not 1 <= self.idle_timeout_s <= 1740:
            problems.append("idle_timeout_s: must be between 1 and 1740 (servers drop IDLE after 30 minutes)")
        if self.fetch_batch < 1:
            problems.append("fetch_batch: must be at least 1")
        if not self.folders:
            problems.append("folders: name at least one folder")
        if self.enabled_fetch and self.imap_host and self.auth == "xoauth2" and self.oauth2_token is None:
            problems.append("oauth2_token: required with auth=xoauth2")
        if problems:
            raise ConfigInvalid("EmailConfig: " + "; ".join(problems))


class EmailChannel(ChannelPlugin[EmailConfig]):
    kind = "email"
    label = "Email (IMAP/SMTP)"
    capabilities = Capabilities(
        features=frozenset({Feature.PULL, Feature.PRIVATE_REPLY, Feature.ATTACHMENTS, Feature.HTML}),
        max_attachment_bytes=25 * 1024 * 1024,
    )
    config_schema = EmailConfig
    event_types = {
        "message": "a customer's mail → a message on a ticket (threaded by In-Reply-To/References, then [#123])",
        "auto_reply": "out-of-office, list or other automatic mail → an automated message (never answered, never reopens)",
        "bounce": "a delivery failure report → marks our original reply failed (5.x.x: address undeliverable); never a ticket",
        "loop": "our own outgoing mail coming back → ignored",
    }

    def __init__(self, config: EmailConfig, *, account_slug: str = "") -> None:
        super().__init__(config, account_slug=account_slug)
        self._session: ImapSession | None = None
        self._lock = threading.Lock()

    # --- inbound: IMAP ------------------------------------------------------------------

    def _login(self, *, smtp: bool = False) -> Login:
        c = self.config
        user = (c.smtp_username if smtp else "") or c.username or c.address
        secret = c.oauth2_token if c.auth == "xoauth2" else ((c.smtp_password or c.password) if smtp else c.password)
        return Login(
            host=c.smtp_host if smtp else c.imap_host,
            port=c.smtp_port if smtp else c.imap_port,
            security=c.smtp_security if smtp else c.imap_security,
            username=user,
            auth=c.auth,
            secret=secret.reveal() if secret else "",
            timeout_s=c.timeout_s,
        )

    def _settings(self) -> FetchSettings:
        c = self.config
        return FetchSettings(
            folders=c.folders, ack=c.ack, ack_keyword=c.ack_keyword, ack_folder=c.ack_folder, batch=c.fetch_batch,
            import_existing=c.import_existing, idle=c.idle, idle_timeout_s=c.idle_timeout_s,
            poll_interval_s=c.poll_interval_s,
        )

    def fetch(self, cursor: str | None) -> FetchResult:
        if not self.config.enabled_fetch or not self.config.imap_host:
            # Demo and send-only accounts: nothing to read, and never a connection attempt.
            return FetchResult(items=(), cursor=cursor or "", retry_after=3600.0)
        with self._lock:
            for attempt in (1, 2):
                session = self._session
                if session is None or session.client is None:
                    session = ImapSession(self._login())
                    session.connect()
                    self._session = session
                try:
                    return fetch_once(session, self._settings(), cursor)
                except ConnectionLost:
                    # Servers drop idle connections (and restart); one fresh connection, then back off.
                    session.close(quiet=True)
                    self._session = None
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Log out of IMAP (the poller thread ending, tests)."""
        with self._lock:
            if self._session is not None:
                self._session.close(quiet=True)
                self._session = None

    # --- parsing -----------------------------------------------------------------------

    def parse(self, raw: RawEvent) -> list[ParsedItem]:
        try:
            return self._parse(raw.body)
        except PluginError:
            raise
        except Exception as exc:  # noqa: BLE001 - one unreadable mail must never block the import
            raise MalformedPayload(f"unreadable mail ({type(exc).__name__}: {exc})") from exc

    def _parse(self, body: bytes) -> list[ParsedItem]:
        if not body.strip():
            raise MalformedPayload("empty mail")
        msg = message_from_bytes(body, policy=parsing.POLICY)
        headers = parsing.Headers(msg)
        if not headers or not any(h in headers for h in ("from", "sender", "message-id", "date", "subject", "to")):
            raise MalformedPayload("no mail headers (From, Date, Message-ID, Subject, To) found")
        ctype = parsing.content_type(msg)
        if ctype == "message/partial":
            raise UnsupportedEvent("message/partial fragments (RFC 2046) are not reassembled")
        own = msgids.own_id(headers.all("Message-ID"), body)
        name, sender = parsing.address(headers.raw("From") or headers.raw("Sender"))
        domain = self.config.address.rsplit("@", 1)[-1] if "@" in self.config.address else ""
        loop = automated.loop_reason(
            headers, own, sender, account_slug=self.account_slug, address=self.config.address, domain=domain
        )
        if loop:
            return [Ignored("loop", loop)]
        if automated.is_bounce(msg, headers, sender):
            bounce = automated.bounce_of(msg)
            if not bounce.original_id:
                return [Ignored("bounce", f"delivery failure without the original message ({bounce.reason})")]
            return [
                DeliveryUpdate(
                    external_id=bounce.original_id, state="failed", reason=bounce.reason[:500],
                    permanent=bounce.permanent, at=parsing.date(headers.raw("Date")),
                )
            ]
        if not sender:
            raise MalformedPayload("no sender address (From or Sender)")
        subject = headers.text("Subject")
        reason = automated.auto_reply_reason(headers, subject)
        parts = parsing.body_of(msg)
        html, html_text = parsing.html_for_agents(parts.html) if parts.html else ("", "")
        text = parts.text or html_text
        # A forward's quoted part is the point of the mail: only a reply's history is folded away.
        reply = quoting.Reply(text.strip(), "", "") if _FORWARDED.match(subject) else quoting.split_reply(text)
        in_reply_to, references = headers.all("In-Reply-To"), headers.all("References")
        metadata = [("message_id", own), ("visible_text", reply.visible)]
        if reply.signature:
            metadata.append(("signature", reply.signature))
        reply_to = parsing.address(headers.raw("Reply-To"))[1]
        if reply_to and reply_to.lower() != sender.lower():
            metadata.append(("reply_to", reply_to))
        if reason:
            metadata.append(("automated", reason))
        if parts.flags:
            metadata.append(("mime", ", ".join(dict.fromkeys(parts.flags))))
        return [
            InboundMessage(
                external_id=own,
                event_type="auto_reply" if reason else "message",
                thread_key=msgids.thread_root(in_reply_to, references, own),
                author=Author(identity=IdentityRef(IdentityKind.EMAIL, sender), display_name=name[:200]),
                text=text,
                subject=subject[:998],
                html=html,
                references=msgids.references_of(in_reply_to, references),
                ticket_ref=msgids.ticket_ref_in(subject, self.config.ticket_ref_prefix),
                sent_at=parsing.date(headers.raw("Date")),
                automated=bool(reason),
                attachments=tuple(parts.attachments),
                metadata=tuple(metadata),
            )
        ]

    # --- outbound: SMTP ----------------------------------------------------------------

    def check_reply(self, reply: OutboundReply) -> None:
        super().check_reply(reply)
        if not self.config.smtp_host:
            raise PermanentSendError(f"account {self.account_slug or '?'} has no smtp_host, so it cannot send mail")
        if reply.to.kind != IdentityKind.EMAIL or "@" not in reply.to.value:
            raise PermanentSendError(f"cannot mail {reply.to.kind.value} {reply.to.value!r}: not an email address")

    def send(self, reply: OutboundReply) -> Delivery:
        self.check_reply(reply)
        message, message_id = build_message(
            reply, address=self.config.address, display_name=self.config.display_name,
            account_slug=self.account_slug, ticket_ref_prefix=self.config.ticket_ref_prefix,
        )
        smtp_send(message, login=self._login(smtp=True), sender=self.config.address, recipients=[reply.to.value])
        return Delivery(
            external_id=message_id, sent_at=datetime.now(timezone.utc), thread_key=reply.thread_key or message_id
        )

    # --- make run ----------------------------------------------------------------------

    @classmethod
    def demo_account(cls) -> DemoAccount:
        # Reading is off: no IMAP server on a laptop, and `make run` must not try to reach one.
        return DemoAccount(
            name="Demo mailbox",
            config={"address": "support@demo.omnidesk.invalid", "display_name": "Demo Support", "enabled_fetch": False},
        )

    def demo_events(self) -> list[WebhookRequest | RawEvent]:
        from .demo import demo_mails

        return [RawEvent(body=body) for body in demo_mails()]
