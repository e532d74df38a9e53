"""Delivering queued replies: claimed under a row lock, sent outside any transaction, retried with backoff."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from omnidesk.plugins.contract import ChannelPlugin, Delivery, Feature, OutboundReply
from omnidesk.plugins.errors import AuthorizationRequired, CapabilityError, PermanentSendError, RetryableSendError
from omnidesk.plugins.services import account_plugin, channel_account_record_error, channel_account_record_success
from omnidesk.reports.facts import report_facts_save
from omnidesk.security.redact import secrets_redact

from .audit import ticket_event_record
from .threading import conversation_link
from .models import Message, OutboundMessage
from .replies import reply_for_outbound

log = logging.getLogger(__name__)

#: how long a sender keeps trying to record a delivery the channel accepted while the database is away:
#: a delivery sent but not recorded would be sent again once its claim goes stale
RECORD_RETRY_S = 60.0
#: error_code of a reply whose sender died mid-send: before it is sent again the channel is asked
#: whether it got there (`delivery_find`), and the mark stays until the channel has answered
INTERRUPTED = "interrupted"


def stale_sending() -> timedelta:
    """A claim older than this is taken as a crashed sender (OMNIDESK_OUTBOX_STALE_SENDING_S)."""
    return timedelta(seconds=settings.OMNIDESK["OUTBOX_STALE_SENDING_S"])


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

    interrupted = outbound.error_code == INTERRUPTED
    outbound = OutboundMessage.objects.select_related("message__ticket", "account", "to_identity").get(pk=outbound_id)
    reply = reply_for_outbound(outbound)
    try:
        plugin = account_plugin(outbound.account)
        if interrupted and Feature.DELIVERY_LOOKUP in plugin.capabilities.features:
            reconciled = _reconcile(outbound, plugin, reply)
            if reconciled is not None:
                return reconciled
        delivery = plugin.send(reply)
    except RetryableSendError as exc:
        return _retry_later(outbound, exc, exc.retry_after)
    except PermanentSendError as exc:
        return _fail(outbound, exc.code, exc.message)
    except Exception as exc:  # a plugin bug: keep the reply, retry, and say what broke
        log.exception("plugin %s crashed sending outbound %s", outbound.account.kind, outbound.pk)
        return _retry_later(outbound, exc, None)

    _sent_record(outbound, delivery)
    channel_account_record_success(account=outbound.account)
    return SendOutcome("sent")


def _reconcile(outbound: OutboundMessage, plugin: ChannelPlugin, reply: OutboundReply) -> SendOutcome | None:
    """Ask the channel whether an interrupted send got there; None: it did not, send it now.

    Looked up from the reply's creation: no attempt can be older, and the mark survives any
    number of failed lookups. While the lookup fails the reply waits, still marked interrupted.
    """
    try:
        delivery = plugin.delivery_find(reply, since=outbound.created_at)
    except CapabilityError:
        return None  # this reply cannot be looked up: resent with the same idempotency key, as before
    except PermanentSendError as exc:
        return _fail(outbound, exc.code, exc.message)
    except Exception as exc:
        if not isinstance(exc, RetryableSendError):
            log.exception("plugin %s crashed looking up outbound %s", outbound.account.kind, outbound.pk)
        return _retry_later(outbound, exc, getattr(exc, "retry_after", None), code=INTERRUPTED)
    if delivery is None:
        return None
    _sent_record(outbound, delivery, reconciled=True)
    channel_account_record_success(account=outbound.account)
    return SendOutcome("reconciled")


def _sent_record(outbound: OutboundMessage, delivery: Delivery, *, reconciled: bool = False) -> None:
    """Record a delivery, waiting out a database restart: the channel already has the reply."""
    deadline = time.monotonic() + RECORD_RETRY_S
    while True:
        try:
            _sent_write(outbound, delivery, reconciled=reconciled)
            return
        except (OperationalError, InterfaceError) as exc:
            if connection.in_atomic_block or time.monotonic() > deadline:
                raise
            log.warning("outbound %s was delivered; recording it failed (%s), retrying", outbound.pk, exc)
            connection.close()
            time.sleep(1.0)


def _sent_write(outbound: OutboundMessage, delivery: Delivery, *, reconciled: bool) -> None:
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
        report_facts_save(ticket_id=message.ticket_id)  # the platform's send time: the parity report's facts
        note = "the sender stopped mid-send; the channel had the reply, so it was not sent again" if reconciled else ""
        ticket_event_record(
            ticket=message.ticket, action="reply_sent", message=message, new=delivery.external_id, note=note
        )
        if delivery.recipient is not None or delivery.thread_key:
            conversation_link(
                ticket=message.ticket, account=outbound.account, recipient=delivery.recipient, thread_key=delivery.thread_key
            )


def _retry_later(
    outbound: OutboundMessage, exc: Exception, retry_after: float | None, *, code: str | None = None
) -> SendOutcome:
    if code is None and getattr(exc, "maybe_delivered", False):
        code = INTERRUPTED  # the channel may have it: looked up before the retry where the channel can
    code = code or getattr(exc, "code", type(exc).__name__)
    text = secrets_redact(str(exc)) or type(exc).__name__  # upstream error pages may echo credentials
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
    reason = secrets_redact(reason)
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
    """Queued replies whose time has come, and claims abandoned by a crashed sender (requeued first).

    An abandoned claim may have reached the channel before the sender died: it is marked
    interrupted, so a channel that can look up what it received is asked first; any other channel
    gets it again with the same idempotency key (Idempotency-Key, the same email Message-ID).
    """
    now = timezone.now()
    OutboundMessage.objects.filter(status=OutboundMessage.Status.SENDING, claimed_at__lt=now - stale_sending()).update(
        status=OutboundMessage.Status.QUEUED, error_code=INTERRUPTED,
        last_error="sender stopped mid-send; looked up first where the channel can tell, else resent with the same key",
    )
    return list(
        OutboundMessage.objects.filter(status=OutboundMessage.Status.QUEUED)
        .exclude(next_attempt_at__gt=now)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
