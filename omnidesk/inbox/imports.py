"""Importing a file of records (call logs) through the ingest pipeline: store, apply, summarize.

The plugin splits the file into RawEvents (chunks keyed by their content, so the same file
stores nothing twice); each chunk is committed, then applied like any webhook body. Re-running
after fixing bad rows stores only the changed chunks, whose good rows are duplicates by
external id: only what was missing is added. Used by `manage.py import_calls` and the API.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from django.conf import settings

from omnidesk.plugins.contract import Headers, Ignored, InboundMessage, Invalid, RawEvent
from omnidesk.plugins.errors import ConfigInvalid, PluginError
from omnidesk.plugins.models import ChannelAccount
from omnidesk.plugins.registry import UnknownPlugin
from omnidesk.plugins.services import account_plugin

from .models import InboundEvent
from .services import inbound_event_store, inbound_events_apply

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
#: invalid rows listed in full; past this only counted
MAX_LISTED_INVALID = 1000
#: a plugin may say how many records a chunk holds (rows merged into one item still count)
ROWS_HEADER = "X-Omnidesk-Cdr-Rows"


class ImportRefused(Exception):
    """The file cannot be imported at all; the message says why."""


@runtime_checkable
class FileSplitter(Protocol):
    """A plugin that reads whole files (call logs): one RawEvent per chunk of records."""

    def split_file(self, data: bytes) -> list[RawEvent]: ...


@dataclass
class ImportSummary:
    account: str
    chunks: int = 0
    #: chunks stored by this run (the rest were stored by an earlier import of the same rows)
    chunks_new: int = 0
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    ignored: Counter[str] = field(default_factory=Counter)
    invalid_count: int = 0
    #: (where, reason), e.g. ("line 12", "start: '2024-13-01 …' is not a date and time")
    invalid: list[tuple[str, str]] = field(default_factory=list)
    #: chunks that failed as a whole (not merely all-invalid rows), with the reason
    failed: list[str] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    tickets: set[int] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "rows": self.rows,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "ignored": sum(self.ignored.values()),
            "ignored_by_reason": dict(sorted(self.ignored.items())),
            "invalid": self.invalid_count,
            "invalid_rows": [{"where": w, "reason": r} for w, r in self.invalid],
            "failed_chunks": list(self.failed),
            "chunks": self.chunks,
            "chunks_new": self.chunks_new,
            "events": list(self.events),
            "tickets": sorted(self.tickets),
        }

    def lines(self) -> list[str]:
        out = [
            f"{self.rows} row(s) read from {self.chunks} chunk(s) ({self.chunks_new} new) into {self.account}",
            f"  imported:   {self.imported}",
            f"  duplicates: {self.duplicates} (already imported)",
            f"  ignored:    {sum(self.ignored.values())}"
            + (f" ({', '.join(f'{k} {v}' for k, v in sorted(self.ignored.items()))})" if self.ignored else ""),
            f"  invalid:    {self.invalid_count}",
        ]
        out += [f"    {where}: {reason}" for where, reason in self.invalid]
        if self.invalid_count > len(self.invalid):
            out.append(f"    … and {self.invalid_count - len(self.invalid)} more")
        out += [f"  failed chunk: {reason}" for reason in self.failed]
        return out


def calls_import(
    *,
    account: ChannelAccount,
    data: bytes,
    progress: Callable[[int, int, ImportSummary], None] | None = None,
) -> ImportSummary:
    """Store a call-log file as chunked raw events, apply them now, and say what became of each row."""
    if not account.enabled:
        raise ImportRefused(f"channel account {account.slug!r} is disabled")
    limit = settings.OMNIDESK.get("IMPORT_MAX_BYTES", DEFAULT_MAX_BYTES)
    if len(data) > limit:
        raise ImportRefused(f"the file is {len(data)} bytes, over the import limit of {limit}")
    if not data.strip():
        raise ImportRefused("the file is empty")
    try:
        plugin = account_plugin(account)
    except (ConfigInvalid, UnknownPlugin) as exc:
        raise ImportRefused(f"channel account {account.slug!r} cannot be used: {exc}") from None
    if not isinstance(plugin, FileSplitter):
        raise ImportRefused(f"the {plugin.label} channel does not import files")
    try:
        chunks = plugin.split_file(data)
    except PluginError as exc:
        raise ImportRefused(f"the file cannot be read: {exc}") from None
    summary = ImportSummary(account=account.slug, chunks=len(chunks))
    for n, raw in enumerate(chunks, 1):
        _import_chunk(account, plugin, raw, summary)
        if progress is not None:
            progress(n, len(chunks), summary)
    return summary


def _import_chunk(account: ChannelAccount, plugin: Any, raw: RawEvent, summary: ImportSummary) -> None:
    event, created = inbound_event_store(account=account, raw=raw)
    summary.events.append(event.pk)
    summary.chunks_new += int(created)
    was_pending = event.status == InboundEvent.Status.PENDING
    if was_pending:
        report = inbound_events_apply(event_ids=[event.pk], limit=1)
        summary.tickets |= report.tickets
        event.refresh_from_db()
    try:
        # parse() is pure: read again here for the full list of rows (the event keeps a capped one)
        items = plugin.parse(raw)
    except PluginError as exc:
        summary.failed.append(f"event {event.pk}: {exc}")
        return
    try:
        summary.rows += int(Headers(raw.headers).get(ROWS_HEADER, "") or len(items))
    except ValueError:
        summary.rows += len(items)
    messages = sum(isinstance(i, InboundMessage) for i in items)
    if event.status == InboundEvent.Status.PENDING:
        summary.failed.append(f"event {event.pk}: still pending (a worker holds it); it will be applied shortly")
    elif was_pending and event.status == InboundEvent.Status.PROCESSED:
        summary.imported += int(event.summary.get("messages", 0))
        summary.duplicates += int(event.summary.get("duplicates", 0))
    elif event.status == InboundEvent.Status.PROCESSED or event.status == InboundEvent.Status.IGNORED:
        summary.duplicates += messages  # stored and applied by an earlier import
    elif messages:  # failed for a reason other than its rows (those are listed below)
        summary.failed.append(f"event {event.pk}: {event.error}")
    for item in items:
        if isinstance(item, Ignored):
            summary.ignored[item.event_type] += 1
        elif isinstance(item, Invalid):
            summary.invalid_count += 1
            if len(summary.invalid) < MAX_LISTED_INVALID:
                summary.invalid.append((item.where, item.reason))
