"""Pull channels: fetch → store every item → only then advance the cursor (which acknowledges them)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import close_old_connections, transaction
from django.utils import timezone

from omnidesk.plugins.contract import Feature
from omnidesk.plugins.errors import AuthorizationRequired, PluginError
from omnidesk.plugins.models import ChannelAccount
from omnidesk.plugins.services import (
    account_plugin,
    channel_account_record_error,
    channel_account_record_success,
)

from .models import Cursor
from .services import inbound_event_enqueue, inbound_events_store

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 60.0
MAX_BACKOFF_S = 900.0


@dataclass
class PollReport:
    stored: int = 0
    duplicates: int = 0
    error: str = ""
    next_poll_in_s: float = DEFAULT_INTERVAL_S
    event_ids: list[int] = field(default_factory=list)


def _interval(plugin: object) -> float:
    return float(getattr(getattr(plugin, "config", None), "poll_interval_s", DEFAULT_INTERVAL_S))


def account_poll(*, account: ChannelAccount, failures: int = 0) -> PollReport:
    """One fetch for one account. Never raises: errors are recorded on the account's health."""
    report = PollReport()
    cursor, _ = Cursor.objects.get_or_create(account=account, name="default")
    now = timezone.now()
    if cursor.not_before and cursor.not_before > now:
        report.next_poll_in_s = (cursor.not_before - now).total_seconds()
        return report
    try:
        plugin = account_plugin(account)
        result = plugin.fetch(cursor.value or None)
    except AuthorizationRequired as exc:
        channel_account_record_error(account=account, error=str(exc), needs_reauthorization=True)
        report.error = str(exc)
        report.next_poll_in_s = MAX_BACKOFF_S
        return report
    except Exception as exc:  # noqa: BLE001 - any fetch failure backs off; nothing is lost, the cursor stays
        text = str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
        channel_account_record_error(account=account, error=text)
        report.error = text
        report.next_poll_in_s = min(MAX_BACKOFF_S, 5.0 * 2**failures)
        return report
    # One commit for the whole fetch: the cursor moves with the items or not at all, and a burst
    # of mail waits for one WAL flush instead of one per mail.
    with transaction.atomic():
        report.event_ids = inbound_events_store(account=account, raws=list(result.items))
        report.stored = len(report.event_ids)
        report.duplicates = len(result.items) - report.stored
        cursor.value = result.cursor
        cursor.not_before = now + timedelta(seconds=result.retry_after) if result.retry_after else None
        cursor.save(update_fields=["value", "not_before", "updated_at"])
    channel_account_record_success(account=account)
    if report.event_ids:
        inbound_event_enqueue(report.event_ids)
    report.next_poll_in_s = result.retry_after if result.retry_after is not None else _interval(plugin)
    return report


def pull_accounts() -> list[ChannelAccount]:
    accounts = []
    for account in ChannelAccount.objects.filter(enabled=True, needs_reauthorization=False):
        try:
            plugin = account_plugin(account)
        except Exception as exc:  # noqa: BLE001
            log.warning("account %s cannot be polled: %s", account.slug, exc)
            continue
        if Feature.PULL in plugin.capabilities.features:
            accounts.append(account)
    return accounts


class PollerPool:
    """One long-running thread per pull account; accounts added or disabled are picked up on rescan."""

    def __init__(self, rescan_s: float = 30.0) -> None:
        self.rescan_s = rescan_s
        self.stop = threading.Event()
        self.threads: dict[int, threading.Thread] = {}

    def run(self) -> None:
        while not self.stop.is_set():
            close_old_connections()
            try:
                wanted = {a.pk: a for a in pull_accounts()}
            except Exception as exc:  # noqa: BLE001 - database away: try again later
                log.warning("poller rescan failed: %s", exc)
                wanted = {}
            for pk, account in wanted.items():
                thread = self.threads.get(pk)
                if thread is None or not thread.is_alive():
                    thread = threading.Thread(target=self._loop, args=(pk,), name=f"poller-{account.slug}", daemon=True)
                    self.threads[pk] = thread
                    thread.start()
            self.stop.wait(self.rescan_s)

    def _loop(self, account_id: int) -> None:
        failures = 0
        while not self.stop.is_set():
            close_old_connections()
            account = ChannelAccount.objects.filter(pk=account_id, enabled=True, needs_reauthorization=False).first()
            if account is None:
                return  # disabled or waiting for re-authorization; the rescan restarts it later
            report = account_poll(account=account, failures=failures)
            failures = failures + 1 if report.error else 0
            self.stop.wait(max(report.next_poll_in_s, 0.05))
