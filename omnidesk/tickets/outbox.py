"""Delivering queued replies: claimed under a row lock, sent outside any transaction, retried with backoff."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from omnidesk.plugins.errors import AuthorizationRequired, PermanentSendError, RetryableSendError
from omnidesk.plugins.services import account_plugin, channel_account_record_error, channel_account_record_success

from .audit import ticket_event_record
from .threading import conversation_link
from .models import Message, OutboundMessage
from .replies import reply_for_outbound

log = logging.getLogger(__name__)

#: a claim older than this is taken as a crashed sender
STALE_SENDING = timedelta(minutes=5)


@dataclass(frozen=True)
class SendOutcome:
    status: str
    retry_in_s: float | None = None


def backoff_seconds(attempts: int) -> float:
    """1 s, 2 s, 4 s ... capped at 15 minutes."""
    return float(min(2 ** max(attempts - 1, 0), 900))


def outbound_send(*, outbound_id: int) -> SendOutcome:
    now = timezone.now()
    with transaction.atomic():
        outbound = (
            OutboundMessage.objects.select_for_update(skip_locked=True)
            .filter(pk=outbound_id, status=OutboundMessage.Status.QUEUED)
            .first()
        )
        if outbound is None:
            return SendOutcome("not-queued")
        if outbound.next_attempt_at and outbound.next_attempt_at > now:
            return SendOutcome("not-due", (outbound.next_attempt_at - now).total_seconds())
        if outbound.account.needs_reauthorization:
            return SendOutcome("waiting-for-reauthorization")
        outbound.status = OutboundMessage.Status.SENDING
        outbound.attempts += 1
        outbound.claimed_at = now
        outbound.save(update_fields=["status", "attempts", "claimed_at"])

    outbound = OutboundMessage.objects.select_related("message__ticket", "account", "to_identity").get(pk=outbound_id)
    reply = reply_for_outbound(outbound)
    try:
        plugin = account_plugin(outbound.account)
        delivery = plugin.send(reply)
    except RetryableSendError as exc:
        return _retry_later(outbound, exc, exc.retry_after)
    except PermanentSendError as exc:
        return _fail(outbound, exc.code, exc.message)
    except Exception as exc:  # a plugin bug: keep the reply, retry, and say what broke
        log.exception("plugin %s crashed sending outbound %s", outbound.account.kind, outbound.pk)
        return _retry_later(outbound, exc, None)

    with transaction.atomic():
        OutboundMessage.objects.filter(pk=outbound.pk).update(
            status=OutboundMessage.Status.SENT, sent_at=timezone.now(), last_error="", error_code=""
        )
        message = outbound.message
        message.external_id = delivery.external_id
        message.state = Message.State.SENT
        message.sent_at = delivery.sent_at or timezone.now()
        if delivery.thread_key:
            message.thread_key = delivery.thread_key
        message.save(update_fields=["external_id", "state", "sent_at", "thread_key"])
        ticket_event_record(ticket=message.ticket, action="reply_sent", message=message, new=delivery.external_id)
        if delivery.recipient is not None or delivery.thread_key:
            conversation_link(
                ticket=message.ticket, account=outbound.account, recipient=delivery.recipient, thread_key=delivery.thread_key
            )
    channel_account_record_success(account=outbound.account)
    return SendOutcome("sent")


def _retry_later(outbound: OutboundMessage, exc: Exception, retry_after: float | None) -> SendOutcome:
    code = getattr(exc, "code", type(exc).__name__)
    text = str(exc) or type(exc).__name__
    if outbound.attempts >= settings.OMNIDESK["OUTBOX_MAX_ATTEMPTS"] and not isinstance(exc, AuthorizationRequired):
        return _fail(outbound, code, f"gave up after {outbound.attempts} attempts: {text}")
    delay = max(retry_after or 0.0, backoff_seconds(outbound.attempts))
    OutboundMessage.objects.filter(pk=outbound.pk).update(
        status=OutboundMessage.Status.QUEUED,
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
        last_error=text[:1000],
        error_code=code[:40],
    )
    channel_account_record_error(
        account=outbound.account, error=text, needs_reauthorization=isinstance(exc, AuthorizationRequired)
    )
    return SendOutcome("retry", delay)


def _fail(outbound: OutboundMessage, code: str, reason: str) -> SendOutcome:
    with transaction.atomic():
        OutboundMessage.objects.filter(pk=outbound.pk).update(
            status=OutboundMessage.Status.FAILED, last_error=reason[:1000], error_code=code[:40]
        )
        message = outbound.message
        message.state = Message.State.FAILED
        message.state_reason = reason[:500]
        message.save(update_fields=["state", "state_reason"])
        ticket_event_record(ticket=message.ticket, action="reply_failed", message=message, new=code, note=reason)
    return SendOutcome("failed")


def outbox_due_ids(*, limit: int = 500) -> list[int]:
    """Queued replies whose time has come, and claims abandoned by a crashed sender (requeued first)."""
    now = timezone.now()
    OutboundMessage.objects.filter(status=OutboundMessage.Status.SENDING, claimed_at__lt=now - STALE_SENDING).update(
        status=OutboundMessage.Status.QUEUED, last_error="sender stopped mid-send; retrying"
    )
    return list(
        OutboundMessage.objects.filter(status=OutboundMessage.Status.QUEUED)
        .exclude(next_attempt_at__gt=now)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
