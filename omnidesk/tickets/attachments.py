"""Storing a message's files: one place for the desk's limits and content-addressed storage."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from .models import Attachment, Message


def attachment_refusal(*, content_type: str, size: int) -> str:
    """Why the desk will not store a file ("" = it will): the size limit and the blocked types."""
    limits = settings.OMNIDESK
    if size > limits["ATTACHMENT_MAX_BYTES"]:
        return f"{size} bytes is over the limit of {limits['ATTACHMENT_MAX_BYTES']}"
    if content_type.lower() in limits["ATTACHMENT_BLOCKED_TYPES"]:
        return f"type {content_type} is blocked"
    return ""


def attachment_store(
    *, message: Message, filename: str, content_type: str, content: bytes, content_id: str = "", inline: bool = False
) -> Attachment | str:
    """Store one file on `message`, or return the reason it was refused."""
    refusal = attachment_refusal(content_type=content_type, size=len(content))
    if refusal:
        return refusal
    digest = hashlib.sha256(content).hexdigest()
    record = Attachment(
        message=message, filename=filename[:255] or "attachment", content_type=content_type[:120],
        size=len(content), sha256=digest, content_id=content_id[:255], inline=inline,
    )
    path = f"attachments/{digest[:2]}/{digest}"
    if default_storage.exists(path):
        record.file.name = path  # content-addressed: the same bytes are stored once
    else:
        record.file.save(digest, ContentFile(content), save=False)
    record.save()
    return record


def attachment_content(attachment: Attachment) -> bytes:
    """The stored bytes of a file (the outbox sends them again on every attempt)."""
    with attachment.file.open("rb") as f:
        return f.read()


__all__ = ["attachment_refusal", "attachment_store", "attachment_content"]
