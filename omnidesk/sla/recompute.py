"""Recomputing the SLA of every open ticket at once (after a policy or calendar change).

The same clocks as `sla_recompute`, run on rows instead of model instances: only the columns the
clocks and the policies' conditions read are fetched, each distinct set of facts picks its policy
once, each policy's calendar is built once, and each batch is written with one statement.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F, OuterRef, Q, Subquery
from django.utils import timezone

from omnidesk.broker import nudge
from omnidesk.tickets.models import Message, Ticket, TicketEvent

from .businesstime import BusinessCalendar
from .models import Policy, RecomputeRequest
from .services import _SLA_FIELDS, STOPPED, Announcement, _clocks, _first_match, announcement_event, business_calendar

#: how long an owed recompute may go unstarted (or a started one without a batch) before the sweep nudges it again
RECOMPUTE_GRACE_S = 120

#: what the clocks read, and the facts every policy condition may ask for
_COLUMNS = (
    "pk", "status", "priority", "first_response_at", "customer_first_message_at", "awaiting_response_since",
    "resolution_running_since", "resolution_used_s", "sla_announced", "first_response_business_s",
    "first_response_met", "resolution_met", "sla_policy_override_id", "group_id",
)
#: the rest of what they write: read too, so that rows left unchanged are not written again
_OUTPUTS = (
    "sla_policy_id", "sla_reason", "first_response_due_at", "next_response_due_at", "resolution_due_at",
    "sla_next_check_at", "sla_due_at",
)
_WRITTEN = tuple(Ticket._meta.get_field(name).attname for name in _SLA_FIELDS)
#: facts that cost a join or a subquery, fetched only when an active policy has such a condition
_FACTS = {"channels": ("channel",), "visibility": ("visibility",), "customer_tags": ("tags", "customer_tags")}


class _Row:
    """One open ticket's SLA columns, under the attribute names the clocks use on a Ticket."""

    __slots__ = (*_COLUMNS, *_OUTPUTS, "channel", "visibility", "tags", "customer_tags", "before")

    def __init__(self, names: tuple[str, ...], values: tuple[Any, ...]) -> None:
        for name, value in zip(names, values, strict=True):
            setattr(self, name, value)
        self.before = self.written()

    def written(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _WRITTEN)


class _Chooser:
    """The policy and calendar for a row, decided once per distinct set of facts."""

    def __init__(self, policies: list[Policy]) -> None:
        self.policies = policies
        self.active = {p.pk: p for p in policies}
        self.asked = {key for p in policies for key in p.conditions}
        self.chosen: dict[tuple, tuple[Policy | None, str]] = {}
        self.calendars: dict[int | None, BusinessCalendar] = {}

    def fetch(self) -> tuple[str, ...]:
        """Names of the row values to read, with the facts some policy asks for."""
        facts = tuple(name for key, names in _FACTS.items() if key in self.asked for name in names)
        return _COLUMNS + _OUTPUTS + facts

    def policy(self, row: _Row) -> tuple[Policy | None, str]:
        if row.sla_policy_override_id in self.active:
            return self.active[row.sla_policy_override_id], "chosen by a routing rule"
        tags = sorted(set(row.tags or ()) | set(row.customer_tags or ())) if "customer_tags" in self.asked else []
        channel = row.channel or "" if "channels" in self.asked else None
        visibility = row.visibility or "private" if "visibility" in self.asked else None
        key = (row.priority, row.group_id, channel, visibility, tuple(tags))
        if key not in self.chosen:
            lookups: dict[str, Callable[[], object]] = {
                "priority": lambda: row.priority, "groups": lambda: row.group_id, "channels": lambda: channel,
                "visibility": lambda: visibility, "customer_tags": lambda: tags,
            }
            self.chosen[key] = _first_match(self.policies, lookups)
        return self.chosen[key]

    def calendar(self, policy: Policy | None) -> BusinessCalendar:
        key = policy.pk if policy else None
        if key not in self.calendars:
            self.calendars[key] = business_calendar(policy.calendar if policy else None)
        return self.calendars[key]


def open_tickets_recompute(
    *, batch: int = 1000, now: datetime | None = None, each_batch: Callable[[], None] | None = None
) -> int:
    """Recompute every ticket that is not solved or closed; returns how many (`now`: tests fix the clock).

    `each_batch` runs inside each batch's transaction (the request's heartbeat)."""
    chooser = _Chooser(list(Policy.objects.filter(active=True).select_related("calendar").order_by("position", "pk")))
    names = chooser.fetch()
    done, last = 0, 0
    while True:
        with transaction.atomic():
            rows = [_Row(names, values) for values in _open_rows(names, after=last, limit=batch)]
            announced: list[tuple[int, Announcement]] = []
            at = now or timezone.now()
            for row in rows:
                announced += [(row.pk, a) for a in _recompute_row(row, chooser, at)]
            sla_fields_write([row for row in rows if row.written() != row.before])
            announcements_record(announced)
            if each_batch is not None:
                each_batch()
        if not rows:
            return done
        done += len(rows)
        last = rows[-1].pk


def recompute_request() -> None:
    """Owe a recompute of every open ticket: call in the transaction that changes a policy or calendar.

    The nudge after the commit starts it at once; if the broker loses it, `recompute_if_owed` (the
    SLA sweep) finds the request in the database."""
    from .tasks import recompute_open_tickets

    RecomputeRequest.objects.update_or_create(pk=1, defaults={"requested_at": timezone.now()})
    transaction.on_commit(lambda: nudge(recompute_open_tickets))


def recompute_requested(*, batch: int = 1000) -> int:
    """Run the owed recompute (the actor): every change requested before it starts is covered."""
    mark, _ = RecomputeRequest.objects.get_or_create(pk=1)
    started_for = mark.requested_at

    def heartbeat() -> None:
        RecomputeRequest.objects.filter(pk=1).update(heartbeat_at=timezone.now())

    heartbeat()
    done = open_tickets_recompute(batch=batch, each_batch=heartbeat)
    finished = RecomputeRequest.objects.filter(pk=1)
    if started_for is not None:  # never move done_for back: a slower, older run may finish last
        finished = finished.filter(Q(done_for__isnull=True) | Q(done_for__lt=started_for))
        finished.update(done_for=started_for, heartbeat_at=None)
    else:
        finished.update(heartbeat_at=None)
    return done


def recompute_if_owed(*, now: datetime | None = None) -> bool:
    """Nudge the recompute again when one is owed and nothing has run it (the broker lost the nudge,
    or the worker died): requested over `RECOMPUTE_GRACE_S` ago and no heartbeat for as long."""
    from .tasks import recompute_open_tickets

    now = now or timezone.now()
    quiet = now - timedelta(seconds=RECOMPUTE_GRACE_S)
    owed = RecomputeRequest.objects.filter(
        Q(done_for__isnull=True) | Q(done_for__lt=F("requested_at")),
        Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=quiet),
        pk=1, requested_at__lt=quiet,
    ).exists()
    if owed:
        nudge(recompute_open_tickets)
    return owed


def _open_rows(names: tuple[str, ...], *, after: int, limit: int) -> Any:
    qs = Ticket.objects.exclude(status__in=STOPPED).filter(pk__gt=after).order_by("pk")
    fields = {"channel": "origin_account__kind", "customer_tags": "customer__tags"}
    if "visibility" in names:
        last_inbound = Message.objects.filter(ticket=OuterRef("pk"), direction=Message.Direction.INBOUND)
        qs = qs.annotate(visibility=Subquery(last_inbound.order_by("-sent_at", "-pk").values("visibility")[:1]))
    return qs.values_list(*(fields.get(name, name) for name in names))[:limit]


def _recompute_row(row: _Row, chooser: _Chooser, now: datetime) -> list[Announcement]:
    policy, reason = chooser.policy(row)
    row.sla_policy_id = policy.pk if policy else None
    row.sla_reason = reason[:300]
    return _clocks(row, policy, chooser.calendar(policy), now)


def _as_json(rows: list[dict[str, Any]]) -> str:
    """A batch as ONE parameter (PostgreSQL reads it with json_to_recordset): the C JSON encoder
    is ~10× cheaper per value than adapting arrays parameter by parameter."""
    return json.dumps(rows, default=datetime.isoformat, separators=(",", ":"))


def announcements_record(announced: list[tuple[int, Announcement]]) -> None:
    """The warnings and breaches as TicketEvents, one INSERT per batch on PostgreSQL."""
    if not announced:
        return
    if connection.vendor != "postgresql":
        TicketEvent.objects.bulk_create(
            TicketEvent(ticket_id=pk, actor=TicketEvent.Actor.SYSTEM, **announcement_event(a)) for pk, a in announced
        )
        return
    table = connection.ops.quote_name(TicketEvent._meta.db_table)
    sql = (
        f"INSERT INTO {table} (ticket_id, at, actor, action, field, new, note) SELECT e.ticket_id, %s, %s, e.action,"
        " e.field, e.new, e.note FROM json_to_recordset(%s::json)"
        " AS e(ticket_id bigint, action varchar, field varchar, new jsonb, note varchar)"
    )
    events = [{"ticket_id": pk, **announcement_event(a)} for pk, a in announced]
    with connection.cursor() as cursor:
        cursor.execute(sql, [timezone.now(), TicketEvent.Actor.SYSTEM, _as_json(events)])


def sla_fields_write(rows: Sequence[Any]) -> None:
    """The SLA fields of tickets (or rows): PostgreSQL, one UPDATE … FROM json_to_recordset; elsewhere
    one UPDATE per ticket, sent as a batch. `updated_at` is left alone."""
    if not rows:
        return
    fields = [Ticket._meta.get_field(name) for name in _SLA_FIELDS]
    table, qn = Ticket._meta.db_table, connection.ops.quote_name
    if connection.vendor == "postgresql":
        record = ", ".join(f"{qn(f.attname)} {f.db_type(connection)}" for f in fields)
        assignments = ", ".join(f"{qn(f.column)} = v.{qn(f.attname)}" for f in fields)
        sql = (
            f"UPDATE {qn(table)} AS t SET {assignments} FROM json_to_recordset(%s::json) AS v(id bigint, {record})"
            " WHERE t.id = v.id"
        )
        values = [{"id": r.pk, **{f.attname: getattr(r, f.attname) for f in fields}} for r in rows]
        with connection.cursor() as cursor:
            cursor.execute(sql, [_as_json(values)])
        return
    assignments = ", ".join(f"{qn(f.column)} = %s" for f in fields)
    values = [[f.get_db_prep_save(getattr(r, f.attname), connection) for f in fields] + [r.pk] for r in rows]
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {qn(table)} SET {assignments} WHERE id = %s", values)
