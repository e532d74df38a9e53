"""Building the mail an agent's reply becomes (pure: no network)."""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from datetime import datetime, timezone

from omnidesk.plugins.contract import OutboundReply

from . import msgids

LOOP_HEADER = "X-Omnidesk-Loop"
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")


def message_id_for(idempotency_key: str, domain: str) -> str:
    """Our Message-ID for a reply, without brackets: the same key always gives the same id.

    A send retried after a timeout then carries the same id, so the customer's client shows
    one mail even if the first attempt got through, and the bounce or the answer to either
    copy finds the one stored message.
    """
    local = _UNSAFE_ID.sub("-", idempotency_key).strip(".") or "reply"
    return f"omnidesk.{local}@{domain}"


def subject_with_ref(subject: str, ticket_ref: int, prefix: str = "#") -> str:
    subject = " ".join((subject or "").split()) or f"Your request {prefix}{ticket_ref}"
    if msgids.ticket_ref_in(subject, prefix) == ticket_ref:
        return subject
    return f"{subject} [{prefix}{ticket_ref}]"


def references_header(reply: OutboundReply) -> list[str]:
    """Root first, parent last, as RFC 5322 wants; reply.references is most specific first."""
    chain = [reply.thread_key] if reply.thread_key else []
    chain += list(reversed(reply.references))
    if reply.in_reply_to:
        chain.append(reply.in_reply_to)
    seen: dict[str, None] = {}
    for ref in chain:
        ref = msgids.normalize_msgid(ref)
        if ref and not ref.startswith("sha256:"):
            seen.pop(ref, None)
            seen[ref] = None
    return list(seen)[-msgids.MAX_REFERENCES :]


def build_message(
    reply: OutboundReply,
    *,
    address: str,
    display_name: str,
    account_slug: str,
    ticket_ref_prefix: str = "#",
    now: datetime | None = None,
) -> tuple[EmailMessage, str]:
    """The MIME message for `reply` and its Message-ID (without brackets)."""
    domain = address.rsplit("@", 1)[-1]
    message_id = message_id_for(reply.idempotency_key, domain)
    msg = EmailMessage()
    msg["From"] = formataddr((display_name, address)) if display_name else address
    msg["To"] = reply.to.value
    msg["Subject"] = subject_with_ref(reply.subject, reply.ticket_ref, ticket_ref_prefix)
    msg["Date"] = format_datetime(now or datetime.now(timezone.utc))
    msg["Message-ID"] = f"<{message_id}>"
    if reply.in_reply_to and not reply.in_reply_to.startswith("sha256:"):
        msg["In-Reply-To"] = f"<{msgids.normalize_msgid(reply.in_reply_to)}>"
    refs = references_header(reply)
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs)
    if reply.automated:
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"
    msg[LOOP_HEADER] = account_slug or address
    msg["X-Omnidesk-Ticket"] = str(reply.ticket_ref)
    msg.set_content(reply.text or "")
    if reply.html:
        msg.add_alternative(reply.html, subtype="html")
    for att in reply.attachments:
        maintype, _, subtype = (att.content_type or "application/octet-stream").partition("/")
        msg.add_attachment(
            att.content, maintype=maintype or "application", subtype=subtype or "octet-stream",
            filename=att.filename or "attachment", disposition="inline" if att.inline else "attachment",
            cid=f"<{att.content_id}>" if att.content_id else None,
        )
    return msg, message_id
