"""Mail no person wrote: auto-replies, bounces, and our own mail coming back.

Getting this wrong is how helpdesks loop (our auto-acknowledgement answers their
out-of-office, which answers ours...) and how bounces become tickets. Auto-replies are kept
as messages but flagged `automated` (never answered automatically, never reopen a solved
ticket); bounces never become messages: they mark OUR original failed, and that original is
found only in the copy the report embeds — a DSN's own Message-ID/In-Reply-To belong to the
reporting server, not to the conversation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message

from . import msgids
from .parsing import Headers, content_type, header_text, part_text

_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort|réponse|respuesta|risposta)|out of (the )?office|"
    r"abwesenheitsnotiz|abwesend|absence|réponse automatique|respuesta automática|risposta automatica|"
    r"automatisch antwoord|automatisk svar|fuera de la oficina|poza biurem|autosvar|"
    r"automaattinen vastaus|автоответ|自动回复|自動応答|不在)",
    re.I,
)
_BOUNCE_SUBJECT = re.compile(
    r"(undeliver|delivery status notification \(failure|delivery status notification \(delay|"
    r"returned mail|failure notice|mail delivery (failed|failure|system)|delivery failure|"
    r"could not be delivered|non[- ]?remis|unzustellbar|nicht zustellbar|delivery has failed)",
    re.I,
)
_DAEMON = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.I)
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_EMBEDDED_MSGID = re.compile(r"^\s*message-id:\s*(<[^>\s]+>|\S+@\S+)", re.I | re.M)


def auto_reply_reason(headers: Headers, subject: str) -> str:
    """Why a mail looks automatic ("" = a person wrote it). RFC 3834 first, then the de-facto headers."""
    auto = (headers.raw("Auto-Submitted") or "").strip().lower()
    if auto and not auto.startswith("no"):
        return f"Auto-Submitted: {auto}"
    precedence = (headers.raw("Precedence") or "").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Response"):
        if name in headers:
            return f"{name} header"
    suppress = (headers.raw("X-Auto-Response-Suppress") or "").strip().lower()
    # Exchange sets it on its own automatic mail ("All", "OOF", "AutoReply"); people's mail lacks it.
    if suppress and any(word in suppress for word in ("all", "oof", "autoreply")):
        return f"X-Auto-Response-Suppress: {suppress}"
    if "List-Id" in headers or "List-Unsubscribe" in headers:
        return "mailing list (List-Id / List-Unsubscribe)"
    if _AUTO_SUBJECT.search(subject):
        return "out-of-office subject"
    return ""


@dataclass(frozen=True)
class Bounce:
    #: Message-ID of the mail that bounced, from the embedded copy ("" = not found)
    original_id: str
    #: "5.1.1" etc. ("" = none given)
    status: str
    diagnostic: str
    recipient: str

    @property
    def permanent(self) -> bool:
        # No status at all: a bounce is a failure unless it says it is temporary.
        return not self.status.startswith("4")

    @property
    def reason(self) -> str:
        parts = [p for p in (self.status, self.diagnostic) if p]
        return " ".join(parts) or "bounced (no status given)"


def is_bounce(msg: Message, headers: Headers, sender: str) -> bool:
    ctype = content_type(msg)
    report_type = (msg.get_param("report-type") or "") if ctype == "multipart/report" else ""
    if ctype == "multipart/report" and str(report_type).lower() == "delivery-status":
        return True
    if "X-Failed-Recipients" in headers:
        return True
    looks_bounced = bool(_BOUNCE_SUBJECT.search(headers.text("Subject")))
    null_path = "Return-Path" in headers and (headers.raw("Return-Path") or "").strip() in ("<>", "")
    daemon = bool(_DAEMON.match(sender))
    # A null Return-Path alone is also what RFC 3834 auto-replies use: it needs a second sign.
    if (daemon or null_path) and looks_bounced:
        return True
    return daemon and _has_embedded(msg)


def _has_embedded(msg: Message) -> bool:
    return any(content_type(p) in ("message/rfc822", "text/rfc822-headers") for p in msg.walk())


def bounce_of(msg: Message) -> Bounce:
    """What a bounce says: the original's Message-ID, the worst status, the diagnostic, the recipient."""
    original = ""
    statuses: list[tuple[str, str, str]] = []
    for part in msg.walk():
        ctype = content_type(part)
        if ctype in ("message/rfc822", "message/global") and not original:
            original = _id_of_embedded(part)
        elif ctype in ("text/rfc822-headers", "message/rfc822-headers", "text/rfc822-header") and not original:
            embedded = message_from_bytes(part_text(part).encode("utf-8", "replace"), policy=policy.compat32)
            ids = msgids.parse_msgids(embedded.get_all("Message-ID") or [])
            original = ids[0] if ids else ""
        elif ctype in ("message/delivery-status", "message/global-delivery-status"):
            statuses += _dsn_fields(part)
    if not original:
        # Bounces without a MIME structure (qmail "failure notice") quote the original in the text.
        for part in msg.walk():
            if content_type(part) == "text/plain":
                text = part_text(part)
                match = _EMBEDDED_MSGID.search(text)
                if match:
                    ids = msgids.parse_msgids(match.group(1))
                    original = ids[0] if ids else ""
                    break
    if not statuses:
        text = " ".join(part_text(p) for p in msg.walk() if content_type(p) == "text/plain")[:20000]
        found = _STATUS.search(text)
        failed = header_text(msg.get("X-Failed-Recipients", ""))
        statuses.append((".".join(found.groups()) if found else "", "", failed))
    status, diagnostic, recipient = max(statuses, key=lambda s: _severity(s[0]))
    return Bounce(original_id=original, status=status, diagnostic=diagnostic, recipient=recipient)


def _severity(status: str) -> int:
    return {"5": 3, "4": 2, "2": 0}.get(status[:1], 1)


def _id_of_embedded(part: Message) -> str:
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    if isinstance(inner, Message):
        ids = msgids.parse_msgids([str(v) for v in inner.get_all("Message-ID") or []])
        return ids[0] if ids else ""
    if isinstance(payload, str):
        match = _EMBEDDED_MSGID.search(payload)
        if match:
            ids = msgids.parse_msgids(match.group(1))
            return ids[0] if ids else ""
    return ""


def _dsn_fields(part: Message) -> list[tuple[str, str, str]]:
    """(status, diagnostic, recipient) per recipient block of a message/delivery-status part."""
    payload = part.get_payload()
    blocks: list[dict[str, str]] = []
    if isinstance(payload, list):
        for block in payload:
            if isinstance(block, Message):
                blocks.append({k.lower(): header_text(str(v)) for k, v in block.items()})
    else:
        text = part_text(part)
        for chunk in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in re.sub(r"\n[ \t]+", " ", chunk).splitlines():
                if ":" in line:
                    k, v = line.split(":", 1)
                    fields[k.strip().lower()] = v.strip()
            blocks.append(fields)
    out = []
    for fields in blocks:
        if "status" not in fields and "final-recipient" not in fields:
            continue
        found = _STATUS.search(fields.get("status", ""))
        status = ".".join(found.groups()) if found else ""
        diagnostic = " ".join(fields.get("diagnostic-code", "").split())
        diagnostic = diagnostic.split(";", 1)[1].strip() if ";" in diagnostic[:12] else diagnostic
        recipient = fields.get("final-recipient", fields.get("original-recipient", ""))
        recipient = recipient.split(";", 1)[1].strip() if ";" in recipient else recipient
        out.append((status, diagnostic[:400], recipient.strip("<> ")))
    return out


def loop_reason(headers: Headers, own_message_id: str, sender: str, *, account_slug: str, address: str, domain: str) -> str:
    """Why a mail is our own coming back ("" = it is not)."""
    marker = (headers.raw("X-Omnidesk-Loop") or "").strip().lower()
    if marker and marker in {account_slug.lower(), address.lower()}:
        return f"X-Omnidesk-Loop: {marker}"
    if domain and own_message_id.lower().startswith("omnidesk.") and own_message_id.lower().endswith("@" + domain.lower()):
        return f"Message-ID <{own_message_id}> is one we generated"
    if address and sender.lower() == address.lower():
        return f"sent from the account's own address {address}"
    return ""
