"""Per-ticket report facts, stored when the ticket's messages change so the report reads ticket rows only.

The parity report needs, besides fields the ticket already has, three facts that live in its
messages (definitions: docs/reports.md):

- ``first_message_public``: the customer's first message (an inbound message sent at
  customer_first_message_at) was public;
- ``next_response_samples``: for each customer message (inbound, not automated) sent after the first
  response, the seconds to the next agent message (outbound, kind message, not automated) sent at or
  after it;
- ``ingest_lag_samples``: received_at - sent_at of each inbound message on the ticket's own channel,
  seconds, and ``ingest_lag_elsewhere`` the same for messages that came in on another channel's
  account ({channel kind: [seconds]}, rare). On PostgreSQL the sample lists are stored as the binary
  float8 values back to back (omnidesk/reports/fields.py), which the report only concatenates.

Ingest updates them as each customer message is stored (`report_facts_inbound`, usually without a
query); they are recomputed from all of the ticket's messages (a handful of rows, one indexed
query) when the SLA service handles an agent response and when the outbox records the platform's
send time of a reply, so they are exact whatever order messages arrive in.
`facts_backfill` computes them in batches for existing tickets (migration 0003 and
`manage.py report_facts_backfill`).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import connection, transaction

FACT_FIELDS = ("first_message_public", "next_response_samples", "ingest_lag_samples", "ingest_lag_elsewhere")
#: message columns the facts read, in this order
MESSAGE_COLUMNS = ("direction", "kind", "automated", "visibility", "sent_at", "received_at", "account__kind")
MessageRow = tuple[str, str, bool, str, datetime, datetime, "str | None"]


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def facts_from_messages(
    *, channel: str, first_message_at: datetime | None, first_response_at: datetime | None, messages: Iterable[MessageRow]
) -> dict[str, Any]:
    """The facts of one ticket from its messages with a sent_at, ordered by (sent_at, id)."""
    rows = list(messages)
    outs = sorted(
        sent for direction, kind, automated, _, sent, _, _ in rows
        if direction == "out" and kind == "message" and not automated
    )
    public_first = False
    next_samples: list[float] = []
    lags: list[float] = []
    elsewhere: dict[str, list[float]] = {}
    for direction, _, automated, visibility, sent, received, account_kind in rows:
        if direction != "in":
            continue
        lag = _seconds(received, sent)
        if account_kind in (None, channel):
            lags.append(lag)
        else:
            elsewhere.setdefault(account_kind, []).append(lag)
        public_first = public_first or (visibility == "public" and sent == first_message_at)
        if automated or first_response_at is None or sent <= first_response_at:
            continue
        i = bisect.bisect_left(outs, sent)
        if i < len(outs):
            next_samples.append(_seconds(outs[i], sent))
    return {
        "first_message_public": public_first, "next_response_samples": next_samples,
        "ingest_lag_samples": lags, "ingest_lag_elsewhere": elsewhere,
    }


def report_facts_refresh(*, ticket: Any) -> list[str]:
    """Recompute `ticket`'s facts in memory; returns the fields for the caller's own UPDATE."""
    from omnidesk.tickets.models import Message

    rows = (
        Message.objects.filter(ticket_id=ticket.pk, sent_at__isnull=False)
        .order_by("sent_at", "pk")
        .values_list(*MESSAGE_COLUMNS)
    )
    facts = facts_from_messages(
        channel=ticket.origin_account.kind, first_message_at=ticket.customer_first_message_at,
        first_response_at=ticket.first_response_at, messages=rows,
    )
    for name, value in facts.items():
        setattr(ticket, name, value)
    return list(FACT_FIELDS)


def report_facts_inbound(*, ticket: Any, message: Any) -> list[str]:
    """A customer message was stored on `ticket`: its facts in memory; returns the fields to save.

    Without a query while the ticket has no agent response (or the message is automated): the
    message only adds its ingest lag and maybe makes the first message public. Otherwise it may pair
    with an agent message already there (it reached us late), so all facts are recomputed.
    """
    if message.sent_at is None:
        return []
    if ticket.first_response_at is not None and not message.automated and message.sent_at > ticket.first_response_at:
        return report_facts_refresh(ticket=ticket)
    lag = _seconds(message.received_at, message.sent_at)
    # the ticket's own account needs no query; another one (rare) may still be of the same channel
    if message.account_id in (None, ticket.origin_account_id) or message.account.kind == ticket.origin_account.kind:
        ticket.ingest_lag_samples = [*ticket.ingest_lag_samples, lag]
        changed = ["ingest_lag_samples"]
    else:
        elsewhere, kind = dict(ticket.ingest_lag_elsewhere), message.account.kind
        elsewhere[kind] = [*elsewhere.get(kind, []), lag]
        ticket.ingest_lag_elsewhere = elsewhere
        changed = ["ingest_lag_elsewhere"]
    if message.visibility == "public" and message.sent_at == ticket.customer_first_message_at:
        ticket.first_message_public = True
    return [*changed, "first_message_public"]


def report_facts_save(*, ticket_id: int) -> None:
    """Recompute and write one ticket's facts (a message time changed outside the SLA service)."""
    from omnidesk.tickets.models import Ticket

    ticket = Ticket.objects.select_related("origin_account").get(pk=ticket_id)
    ticket.save(update_fields=report_facts_refresh(ticket=ticket))


def facts_backfill(*, ticket_model: Any = None, message_model: Any = None, batch: int = 5000) -> int:
    """Compute and store the facts of every ticket, `batch` tickets per transaction; returns the count.

    Takes the models so a migration can pass its historical ones.
    """
    if ticket_model is None or message_model is None:
        from omnidesk.tickets.models import Message, Ticket

        ticket_model, message_model = Ticket, Message
    done = last = 0
    while True:
        tickets = list(
            ticket_model.objects.filter(pk__gt=last).order_by("pk")
            .values_list("pk", "origin_account__kind", "customer_first_message_at", "first_response_at")[:batch]
        )
        if not tickets:
            return done
        last = tickets[-1][0]
        messages: dict[int, list[MessageRow]] = defaultdict(list)
        rows = (
            message_model.objects.filter(ticket_id__gte=tickets[0][0], ticket_id__lte=last, sent_at__isnull=False)
            .order_by("ticket_id", "sent_at", "pk")
            .values_list("ticket_id", *MESSAGE_COLUMNS)
        )
        for row in rows:
            messages[row[0]].append(row[1:])
        facts = [
            (pk, facts_from_messages(channel=ch, first_message_at=cfm, first_response_at=fra, messages=messages.get(pk, ())))
            for pk, ch, cfm, fra in tickets
        ]
        _facts_write(ticket_model, facts)
        done += len(facts)


def _facts_write(model: Any, facts: list[tuple[int, dict[str, Any]]]) -> None:
    """One UPDATE per ticket, the values as `model`'s fields store them (a migration's model: its own types)."""
    fields = [model._meta.get_field(name) for name in FACT_FIELDS]
    sql = (
        f"UPDATE {model._meta.db_table} SET first_message_public = %s, next_response_samples = %s, "
        "ingest_lag_samples = %s, ingest_lag_elsewhere = %s WHERE id = %s"
    )
    params = [
        (*(field.get_db_prep_save(f[field.name], connection) for field in fields), pk)
        for pk, f in facts
    ]
    with transaction.atomic(), connection.cursor() as cur:
        cur.executemany(sql, params)
