"""The ingest pipeline: store raw input first, apply it later, idempotently, in batches."""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Field
from django.utils import timezone

from omnidesk.broker import nudge_batched
from omnidesk.customers.identities import InvalidIdentity
from omnidesk.grouping import GroupWriter
from omnidesk.incidents.signals import status_signal_apply
from omnidesk.plugins.contract import (
    DeliveryUpdate,
    Ignored,
    InboundMessage,
    Invalid,
    MessageUpdate,
    RawEvent,
    StatusSignal,
)
from omnidesk.plugins.errors import PluginError
from omnidesk.plugins.models import ChannelAccount
from omnidesk.plugins.services import account_plugin
from omnidesk.plugins.storable import storable, storable_text
from omnidesk.routing.services import rules_loaded_once
from omnidesk.rows import (
    columns,
    instances,
    prepared_cursor,
    rows_deferred,
    rows_update,
    select_with,
    stored,
)
from omnidesk.sla.services import policies_loaded_once
from omnidesk.tickets.audit import ticket_events_deferred
from omnidesk.tickets.ingest import (
    IngestLookups,
    delivery_update_apply,
    message_ingest,
    message_update_apply,
)
from omnidesk.workspace import live

from .models import InboundEvent

log = logging.getLogger(__name__)

#: attempts at one item when racing workers keep colliding on unique keys
RACE_RETRIES = 3
#: PostgreSQL's answers when workers' batches wait on each other (deadlock detected, serialization
#: failure, lock not available): the event is left pending and nudged again, never marked failed
LOCK_CONTENTION_SQLSTATES = frozenset({"40P01", "40001", "55P03"})


def inbound_event_store(*, account: ChannelAccount, raw: RawEvent) -> tuple[InboundEvent, bool]:
    """Commit raw input; a redelivery of the same item returns the stored row, created=False.

    One statement (INSERT … ON CONFLICT DO NOTHING RETURNING id): no transaction of its own, so
    the webhook pays one round trip, and a concurrent delivery of the same item waits for the
    first and then finds it.
    """
    received_at = timezone.now()
    pk = _event_insert(account, raw, received_at, guarded=False)
    if pk is None:
        existing = InboundEvent.objects.filter(account=account, dedupe_key=raw.dedupe_key).first()
        if existing is None:  # cannot happen after DO NOTHING, short of a delete in between
            return inbound_event_store(account=account, raw=raw)
        return existing, False
    event = InboundEvent(
        account=account, dedupe_key=raw.dedupe_key, body=raw.body, headers=dict(raw.headers.items()),
        received_at=received_at,
    )
    stored(event, pk)
    return event, True


#: rows per INSERT when a poller stores a fetch
STORE_CHUNK = 100


def inbound_events_store(*, account: ChannelAccount, raws: list[RawEvent]) -> list[int]:
    """Store a fetch's raw items, a multi-row INSERT … ON CONFLICT DO NOTHING per STORE_CHUNK
    items (a poller paid one round trip per mail); the ids of the new ones, redeliveries skipped.
    The caller's transaction makes them durable with its cursor."""
    ids: list[int] = []
    for start in range(0, len(raws), STORE_CHUNK):
        ids += _events_insert(account, raws[start:start + STORE_CHUNK])
    return ids


def _events_insert(account: ChannelAccount, raws: list[RawEvent]) -> list[int]:
    if not raws:
        return []
    params: list[object] = []
    received_at = timezone.now()
    for raw in raws:
        params += _event_values(account, raw, received_at)
    one = f"({', '.join(['%s'] * len(_STORE_FIELDS))})"
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(f"VALUES {', '.join([one] * len(raws))}"), params)
        return [row[0] for row in cursor.fetchall()]


def inbound_event_store_if_current(*, account: ChannelAccount, raw: RawEvent) -> int | None:
    """Store new raw input for an account read earlier (the webhook's copy, verified with it), in
    the same one statement, provided the account's row still says what the copy says: enabled,
    same slug, kind, secrets and last change. The new event's id; None when nothing was stored (the
    copy is stale, or the item is a redelivery): the caller then reads the account and goes the
    ordinary way.

    On PostgreSQL, outside a transaction, the webhooks of this process that store at the same moment
    are written together, one INSERT and one commit (`grouping.GroupWriter`); each call still returns
    once its own row is committed.
    """
    received_at = timezone.now()
    if connection.vendor != "postgresql" or not connection.get_autocommit():
        return _event_insert(account, raw, received_at, guarded=True)
    return _store_group.submit((account, raw, received_at))


_Storing = tuple[ChannelAccount, RawEvent, datetime]


def _events_insert_if_current(items: Sequence[_Storing]) -> list[int | None]:
    """`_event_insert(…, guarded=True)` of several webhooks in one statement: each one's id, or None."""
    if len(items) == 1:
        return [_event_insert(*items[0], guarded=True)]
    params = [value for item in items for value in _guarded_values(*item)]
    with prepared_cursor() as cursor:
        cursor.execute(_group_store_sql(len(items)), params)
        stored = {(account_id, key): pk for pk, account_id, key in cursor.fetchall()}
    # pop: the same item twice in one group is stored once; the second goes the ordinary way (a redelivery)
    return [stored.pop((account.pk, raw.dedupe_key), None) for account, raw, _ in items]


#: webhooks stored at once (the WSGI server's request threads of one process)
_store_group: GroupWriter[_Storing, int | None] = GroupWriter(_events_insert_if_current, limit=32)


@functools.cache
def _group_store_sql(rows: int) -> str:
    """The guarded INSERT of `rows` webhooks: each row stored if its account's row is as its copy says."""
    quote = connection.ops.quote_name
    fields = [*_store_fields(), ChannelAccount._meta.pk, *_checked_fields()]
    # typed, so the VALUES columns are the table's; varchar as text, so a value too long still fails
    types = [re.sub(r"^varchar\(\d+\)$", "text", f.cast_db_type(connection)) for f in fields]
    row = f"({', '.join(f'%s::{t}' for t in types)})"
    names = [f"c{i}" for i in range(len(fields))]
    stored, account, checked = names[: len(_STORE_FIELDS)], names[len(_STORE_FIELDS)], names[len(_STORE_FIELDS) + 1:]
    return _insert_sql(
        f"SELECT {', '.join(f'v.{n}' for n in stored)} FROM (VALUES {', '.join([row] * rows)}) AS v({', '.join(names)}), "
        f"{quote(ChannelAccount._meta.db_table)} a WHERE a.{quote('id')} = v.{account} AND a.{quote('enabled')} AND "
        + " AND ".join(f"a.{quote(f.column)} = v.{n}" for f, n in zip(_checked_fields(), checked, strict=True)),
        returning=("id", "account_id", "dedupe_key"),
    )


#: what the webhook's copy of an account must still match for its verification to stand
_CURRENT_ACCOUNT_FIELDS = ("slug", "kind", "secrets_encrypted", "updated_at")


def _event_insert(account: ChannelAccount, raw: RawEvent, received_at: datetime, *, guarded: bool) -> int | None:
    """The new event's id, None when nothing was stored. No model instance is built: a webhook
    needs only the id, and building one cost about a tenth of the store's CPU."""
    params = _guarded_values(account, raw, received_at) if guarded else _event_values(account, raw, received_at)
    with prepared_cursor() as cursor:
        cursor.execute(_store_sql(connection.vendor, guarded=guarded), params)
        row = cursor.fetchone()
    return None if row is None else row[0]


_STORE_FIELDS = ("account", "dedupe_key", "body", "headers", "received_at", "status", "error", "attempts", "summary")


def _event_values(account: ChannelAccount, raw: RawEvent, received_at: datetime) -> list[object]:
    """A new event's _STORE_FIELDS values for `raw`, as the database takes them."""
    values = (account.pk, raw.dedupe_key, raw.body, dict(raw.headers.items()), received_at,
              InboundEvent.Status.PENDING.value, "", 0, {})
    return [f.get_db_prep_save(value, connection) for f, value in zip(_store_fields(), values, strict=True)]


def _guarded_values(account: ChannelAccount, raw: RawEvent, received_at: datetime) -> list[object]:
    """_event_values, then the account's id and what its row must still hold (a guarded INSERT's row)."""
    checked = [f.get_db_prep_value(getattr(account, f.attname), connection) for f in _checked_fields()]
    return [*_event_values(account, raw, received_at), account.pk, *checked]


@functools.cache
def _store_fields() -> tuple[Field, ...]:
    return tuple(InboundEvent._meta.get_field(name) for name in _STORE_FIELDS)


@functools.cache
def _checked_fields() -> tuple[Field, ...]:
    return tuple(ChannelAccount._meta.get_field(name) for name in _CURRENT_ACCOUNT_FIELDS)


@functools.cache
def _store_sql(vendor: str, *, guarded: bool) -> str:
    """The webhook's INSERT, written once per process (it ran on every webhook); `vendor` keys the quoting."""
    values = f"VALUES ({', '.join(['%s'] * len(_STORE_FIELDS))})"
    if guarded:
        quote = connection.ops.quote_name
        values = (
            f"SELECT {', '.join(['%s'] * len(_STORE_FIELDS))} FROM {quote(ChannelAccount._meta.db_table)} "
            f"WHERE {quote('id')} = %s AND {quote('enabled')} AND "
            + " AND ".join(f"{quote(f.column)} = %s" for f in _checked_fields())
        )
    return _insert_sql(values)


def _insert_sql(values: str, returning: tuple[str, ...] = ("id",)) -> str:
    """INSERT of _STORE_FIELDS from `values` (VALUES rows or a SELECT); a redelivery inserts nothing."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in _store_fields())
    return (
        f"INSERT INTO {quote(InboundEvent._meta.db_table)} ({columns}) {values} "
        f"ON CONFLICT ({quote('account_id')}, {quote('dedupe_key')}) DO NOTHING "
        f"RETURNING {', '.join(quote(column) for column in returning)}"
    )


def inbound_event_enqueue(event_ids: list[int]) -> None:
    """Nudge a worker. Never raises: the event is stored and the sweep finds it if the broker is down.

    Concurrent webhooks share messages (`nudge_batched`): one claim per batch, not per event.
    """
    from .tasks import apply_inbound_events

    nudge_batched(apply_inbound_events, event_ids, size=settings.OMNIDESK["APPLY_BATCH"])


#: an event claimed, its account, and what the plugin made of it (or what parse raised)
_Parsed = tuple[InboundEvent, ChannelAccount, list[object] | Exception]


@dataclass
class ApplyReport:
    applied: int = 0
    failed: int = 0
    ignored: int = 0
    tickets: set[int] = field(default_factory=set)
    #: left pending because another worker's transaction held what they needed; re-enqueued
    deferred: list[int] = field(default_factory=list)


def inbound_events_apply(*, event_ids: list[int] | None = None, limit: int | None = None) -> ApplyReport:
    """Claim pending events (row locks, skipping ones another worker holds) and apply them.

    The events named are claimed first; the batch is topped up with other pending events so a
    burst is applied in few transactions. What the batch's messages need from the database
    (existing external ids, identities, threads) is read once for the whole batch; each event
    is applied in isolation (`_apply_batch`): a poison event is marked failed and never blocks the
    ones behind it.
    """
    limit = limit or settings.OMNIDESK["APPLY_BATCH"]
    report = ApplyReport()
    with transaction.atomic():
        events = _claim(event_ids or [], limit)
        if not events:
            return report
        accounts = {a.pk: a for a in _accounts([*{e.account_id for e in events}])}
        parsed = [(event, accounts[event.account_id], _parse(event, accounts[event.account_id])) for event in events]
        known = _batch_lookups(parsed)
        with policies_loaded_once(), rules_loaded_once():
            report, touched = _apply_batch(parsed, known)
        _events_save([event for event, _, _ in parsed if event.pk not in report.deferred])
        if touched:
            # the teams as this transaction left the tickets: the broadcast reads nothing back
            changes = {ticket_id: change for ticket_id, (change, _) in touched.items()}
            teams = {ticket_id: team for ticket_id, (_, team) in touched.items()}
            transaction.on_commit(lambda: live.tickets_changed(changes, teams=teams))
        if report.deferred:
            deferred = list(report.deferred)
            transaction.on_commit(lambda: inbound_event_enqueue(deferred))
    return report


def _claim(event_ids: list[int], limit: int) -> list[InboundEvent]:
    """Lock up to `limit` pending events, the ones named first, skipping those another worker holds.

    On PostgreSQL two statements built once per process: compiling the ORM's two queries cost a
    worker more CPU per batch than running them.
    """
    if connection.vendor != "postgresql":
        base = InboundEvent.objects.select_for_update(skip_locked=True).filter(status=InboundEvent.Status.PENDING)
        events = list(base.filter(pk__in=event_ids).order_by("pk")[:limit]) if event_ids else []
        if len(events) < limit:
            events += list(base.exclude(pk__in=[e.pk for e in events]).order_by("received_at", "pk")[: limit - len(events)])
        return events
    named, others = _claim_sql()
    with prepared_cursor() as cursor:
        rows = []
        if event_ids:
            cursor.execute(named, [event_ids, limit])
            rows = cursor.fetchall()
        if len(rows) < limit:
            cursor.execute(others, [[row[0] for row in rows], limit - len(rows)])
            rows += cursor.fetchall()
    return [instances(row, [InboundEvent])[0] for row in rows]


@functools.cache
def _claim_sql() -> tuple[str, str]:
    """The claim of named pending events, and of the oldest others."""
    table = connection.ops.quote_name(InboundEvent._meta.db_table)
    pending = f"e.{connection.ops.quote_name('status')} = '{InboundEvent.Status.PENDING.value}'"
    select = f"SELECT {columns(InboundEvent, 'e')} FROM {table} e WHERE {pending} AND"
    lock = "FOR UPDATE SKIP LOCKED"
    # The oldest by arrival, read from the (status, received_at) index: ordered by id, PostgreSQL
    # walked the primary key past every event already processed (5 ms a claim at 12,000 events,
    # half the database's CPU in bench/ingest.py), or sorted the whole backlog.
    return (
        f"{select} e.id = ANY(%s) ORDER BY e.id LIMIT %s {lock}",
        f"{select} NOT (e.id = ANY(%s)) ORDER BY e.{connection.ops.quote_name('received_at')}, e.id LIMIT %s {lock}",
    )


def _accounts(ids: list[int]) -> list[ChannelAccount]:
    """The batch's accounts; on PostgreSQL by a statement built once (rows.select_with)."""
    if connection.vendor != "postgresql":
        return list(ChannelAccount.objects.filter(pk__in=ids))
    return select_with(ChannelAccount, (), 'm."id" = ANY(%s)', [ids])


def _batch_lookups(parsed: list[_Parsed]) -> IngestLookups | None:
    """The batch's reads done at once; None (every item reads for itself) if they fail."""
    items = [
        (account, item) for _, account, found in parsed if isinstance(found, list)
        for item in found if isinstance(item, InboundMessage)
    ]
    try:
        with transaction.atomic():
            return IngestLookups(items)
    except Exception:  # only a help: never let it block the batch
        log.exception("batch lookups failed; applying item by item")
        return None


def _parse(event: InboundEvent, account: ChannelAccount) -> list[object] | Exception:
    """What the plugin makes of the event, or what it raised (handled per event by _apply_one)."""
    try:
        plugin = account_plugin(account)
        raw = RawEvent(body=bytes(event.body), headers=event.headers, source_key=event.dedupe_key)
        return [storable(item) for item in plugin.parse(raw)]
    except Exception as exc:  # noqa: BLE001 - re-raised in _apply_one, inside its handling
        return exc


#: a ticket the batch changed: how (the live update's word) and its group as the batch left it
_Touched = tuple[str, int | None]


class _BatchFailed(Exception):
    """An item of a batch applied under one savepoint failed: the batch is applied again around it."""

    def __init__(self, event_pk: int) -> None:
        super().__init__(event_pk)
        self.event_pk = event_pk


def _apply_batch(parsed: list[_Parsed], known: IngestLookups | None) -> tuple[ApplyReport, dict[int, _Touched]]:
    """The batch under one savepoint: two statements per item fewer than a savepoint each.

    When an item fails, the batch is rolled back and split around it: the items before it are
    applied again under one savepoint, the failed item alone in savepoints of its own (where a
    race is retried and a poison event marked failed without taking its neighbours along), then
    the items after it, again together. So a worker that lost a race for a new customer's identity
    (about one batch in twelve under bench/ingest.py) pays the slow path for that one item, not for
    the whole batch. An event that lost a deadlock is left pending at once, as the per-item path
    would leave it, rather than sent back into the same contention. The batch's new rows are written
    one INSERT per table (rows.rows_deferred); one that conflicts when written names its own item.
    """
    report, touched = ApplyReport(), {}
    todo: list[tuple[str, list[_Parsed]]] = [("together", parsed)]
    while todo:
        how, part = todo.pop(0)
        if not part:
            continue
        if how == "alone":
            [(event, account, items)] = part
            _apply_one(event, account, items, report, touched)
            continue
        if how == "deferred":
            report.deferred.append(part[0][0].pk)
            continue
        # What earlier reads remembered may have gone with a rollback: a part after one reads afresh.
        failed, contended = _apply_together(part, known if part is parsed else _batch_lookups(part), report, touched)
        if failed is None:
            continue
        if failed < 0:  # not one item's doing (the audit rows' INSERT): each item on its own
            todo[:0] = [("alone", [entry]) for entry in part]
            continue
        alone = "deferred" if contended else "alone"
        todo[:0] = [("together", part[:failed]), (alone, [part[failed]]), ("together", part[failed + 1:])]
    return report, touched


def _apply_together(
    part: list[_Parsed], known: IngestLookups | None, report: ApplyReport, touched: dict[int, _Touched]
) -> tuple[int | None, bool]:
    """`part` under one savepoint, its outcomes added to `report` and `touched`. On an error, rolled
    back with its events as they were: the index of the item that failed (-1: none did) and whether
    it lost a deadlock; (None, False) when all went in."""
    before = {event.pk: [getattr(event, name) for name in _FINISH_FIELDS] for event, _, _ in part}
    done, changed = ApplyReport(), {}
    deferred = None
    try:
        expected = known.expected_rows if known is not None else {}
        with transaction.atomic(), ticket_events_deferred(), rows_deferred(expected) as deferred:
            for event, account, items in part:
                if deferred is not None:
                    deferred.owner = event.pk  # whose rows they are, should one conflict when written
                _apply_one(event, account, items, done, changed, known, shared=True)
    except Exception as exc:  # noqa: BLE001 - an item's error (_BatchFailed) or the audit rows' INSERT
        cause = exc.__cause__ if isinstance(exc, _BatchFailed) else exc
        log.info("batch rolled back (%r); applying it again around the item that failed", cause)
        for event, _, _ in part:
            for name, value in zip(_FINISH_FIELDS, before[event.pk], strict=True):
                setattr(event, name, value)
        # Held-back rows that failed when written (a conflict, a deadlock) name their item, whichever
        # statement wrote them.
        failed_pk = deferred.blamed if deferred is not None else None
        if failed_pk is None and isinstance(exc, _BatchFailed):
            failed_pk = exc.event_pk
        failed = next((i for i, (event, _, _) in enumerate(part) if event.pk == failed_pk), None)
        if failed is None:
            return -1, False
        return failed, cause is not None and _lock_contention(cause)
    report.applied += done.applied
    report.failed += done.failed
    report.ignored += done.ignored
    report.tickets |= done.tickets
    report.deferred += done.deferred
    touched.update(changed)
    return None, False


def _apply_one(  # type: ignore[no-untyped-def]
    event: InboundEvent, account: ChannelAccount, items, report: ApplyReport, touched: dict[int, _Touched],
    known: IngestLookups | None = None, *, shared: bool = False,
) -> None:
    """Apply one event's items; `shared`: inside the batch's savepoint, where any error of an item
    raises _BatchFailed (an event the plugin could not parse wrote nothing and is marked here)."""
    event.attempts += 1
    summary: Counter[str] = Counter()
    notes: list[str] = []
    try:
        if isinstance(items, Exception):
            raise items
        for item in items:
            (_apply_shared if shared else _apply_item)(account, item, event, summary, notes, touched, known)
    except _BatchFailed:
        raise
    except (PluginError, InvalidIdentity) as exc:
        _finish(event, InboundEvent.Status.FAILED, f"{getattr(exc, 'code', 'invalid_identity')}: {exc}", summary, notes)
        report.failed += 1
        return
    except IntegrityError as exc:
        _finish(event, InboundEvent.Status.FAILED, f"could not be applied after {RACE_RETRIES} tries: {exc}", summary, notes)
        report.failed += 1
        return
    except Exception as exc:  # a plugin or core bug: keep the event, mark it, move on
        if _lock_contention(exc):  # a race, not a bug: try again in a later transaction
            log.info("event %s deferred: %s", event.pk, str(exc).splitlines()[0])
            report.deferred.append(event.pk)
            return
        log.exception("event %s of %s could not be applied", event.pk, account.slug)
        _finish(event, InboundEvent.Status.FAILED, f"internal error: {type(exc).__name__}: {exc}", summary, notes)
        report.failed += 1
        return
    if summary["messages"] or summary["duplicates"] or summary["updates"]:
        warning = f"{summary['invalid']} invalid record(s) skipped; see notes" if summary["invalid"] else ""
        _finish(event, InboundEvent.Status.PROCESSED, warning, summary, notes)
        report.applied += 1
    elif summary["invalid"]:
        _finish(event, InboundEvent.Status.FAILED, f"all {summary['invalid']} record(s) invalid; see notes", summary, notes)
        report.failed += 1
    else:
        _finish(event, InboundEvent.Status.IGNORED, "", summary, notes)
        report.ignored += 1
    report.tickets |= set(touched)


def _apply_item(account, item, event, summary, notes, touched, known=None) -> None:  # type: ignore[no-untyped-def]
    """One item in its own savepoint, retried when racing workers collide on a unique key."""
    for attempt in range(RACE_RETRIES):
        try:
            with transaction.atomic():
                _apply_kind(account, item, event, summary, notes, touched, known)
            return
        except BaseException as exc:
            if known is not None:
                # Rolled back: what the batch read or remembered may be gone; the rest goes item by item.
                known.disable()
            if isinstance(exc, InvalidIdentity):
                # One unusable author (a garbled number in a CDR row) is one bad record, not a bad batch.
                summary["invalid"] += 1
                notes.append(f"invalid {getattr(item, 'external_id', '?')}: {exc}")
                return
            if not isinstance(exc, IntegrityError) or attempt == RACE_RETRIES - 1:
                raise


def _apply_shared(account, item, event, summary, notes, touched, known) -> None:  # type: ignore[no-untyped-def]
    """One item inside the batch's savepoint: any error sends the whole batch down the per-item path."""
    try:
        _apply_kind(account, item, event, summary, notes, touched, known)
    except Exception as exc:
        raise _BatchFailed(event.pk) from exc


def _apply_kind(account, item, event, summary, notes, touched, known) -> None:  # type: ignore[no-untyped-def]
    """What one parsed item does, by its type."""
    if isinstance(item, InboundMessage):
        outcome = message_ingest(account=account, item=item, received_at=event.received_at, known=known)
        summary["duplicates" if outcome.duplicate else "messages"] += 1
        notes.extend(outcome.notes)
        if not outcome.duplicate and outcome.message is not None:
            change = "created" if outcome.ticket_created else "message"
            touched[outcome.message.ticket_id] = (change, outcome.message.ticket.group_id)
    elif isinstance(item, DeliveryUpdate):
        notes.append(delivery_update_apply(account=account, update=item))
        summary["updates"] += 1
    elif isinstance(item, MessageUpdate):
        notes.append(message_update_apply(account=account, update=item))
        summary["updates"] += 1
    elif isinstance(item, Ignored):
        summary[f"ignored:{item.event_type}"] += 1
        notes.append(f"{item.event_type}: {item.reason}")
    elif isinstance(item, Invalid):
        summary["invalid"] += 1
        notes.append(f"invalid {item.where}: {item.reason}")
    elif isinstance(item, StatusSignal):
        notes.append(status_signal_apply(account=account, signal=item))
        summary["updates"] += 1
    else:
        raise PluginError(f"parse() returned {type(item).__name__}, which is not part of the contract")
    if known is not None and not isinstance(item, (InboundMessage, Ignored, Invalid)):
        known.disable()  # it wrote elsewhere (deliveries, edits, signals): later items read afresh


def _lock_contention(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and getattr(exc.__cause__, "sqlstate", None) in LOCK_CONTENTION_SQLSTATES


def _finish(event: InboundEvent, status: str, error: str, summary: Counter[str], notes: list[str]) -> None:
    """Record the outcome on the event; written for the whole batch by _events_save."""
    event.status = status
    event.error = storable_text(error)
    event.processed_at = timezone.now()
    event.summary = {**dict(summary), **({"notes": notes[:200]} if notes else {})}


_FINISH_FIELDS = ("status", "error", "processed_at", "summary", "attempts")


def _events_save(events: list[InboundEvent]) -> None:
    """The batch's outcomes in one UPDATE (was one per event, pipelined)."""
    rows_update(events, _FINISH_FIELDS)


def inbound_event_retry(*, event: InboundEvent) -> None:
    """Put a failed or ignored event back in the queue (after a plugin fix, say)."""
    InboundEvent.objects.filter(pk=event.pk).update(status=InboundEvent.Status.PENDING, error="")
    transaction.on_commit(lambda: inbound_event_enqueue([event.pk]))


def inbound_pending_ids(*, older_than_s: float | None = None, limit: int = 10_000) -> list[int]:
    """Events still pending (broker was down, a worker died); all of them when older_than_s is 0."""
    after = settings.OMNIDESK["SWEEP_PENDING_AFTER_S"] if older_than_s is None else older_than_s
    cutoff = timezone.now() - timedelta(seconds=after)
    return list(
        InboundEvent.objects.filter(status=InboundEvent.Status.PENDING, received_at__lte=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
