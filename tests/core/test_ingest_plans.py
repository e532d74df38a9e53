"""The apply's prepared statements keep to their indexes however the tables grow.

A prepared statement is planned once for every call (a generic plan): a plan that scans a whole table
costs more with every event, ticket or customer stored. bench/ingest.py found three (docs/benchmarks.md):
the claim walked the primary key past every event already processed, a follow-up's ticket UPDATE and
the batch's identity lookup scanned their tables. Each test builds a table of some thousands of rows,
plans the statement as the workers do (generic) and counts the rows PostgreSQL looked at.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from omnidesk.customers.models import Customer, Identity
from omnidesk.customers.services import _BATCH_WHERE, IdentityLookups
from omnidesk.inbox.models import InboundEvent
from omnidesk.inbox.services import _claim_sql, inbound_events_apply
from omnidesk.plugins.contract import IdentityKind, IdentityRef
from omnidesk.rows import _update_sql, select_sql
from omnidesk.tickets.models import Ticket
from tests.conftest import api_body

pytestmark = pytest.mark.django_db

_names = itertools.count()


def _generic_plan(sql: str, params: list[Any]) -> dict[str, Any]:
    """EXPLAIN ANALYZE of `sql` (%s placeholders) prepared and planned generically, as the workers run it."""
    numbered = iter(range(1, 100))
    prepared = sql.replace("%s", "${}").format(*[next(numbered) for _ in range(sql.count("%s"))])
    name = f"plan_test_{next(_names)}"
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE {name} AS {prepared}")
        try:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}({', '.join(['%s'] * len(params))})", params)
            (plan,) = cursor.fetchone()
        finally:
            cursor.execute(f"DEALLOCATE {name}")
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


def _rows_looked_at(plan: dict[str, Any], table: str) -> int:
    """Rows every scan of `table` in the plan returned or filtered out."""
    looked = 0
    if plan.get("Relation Name") == table:
        looked += int(plan.get("Actual Rows", 0)) * int(plan.get("Actual Loops", 1))
        looked += int(plan.get("Rows Removed by Filter", 0))
    return looked + sum(_rows_looked_at(child, table) for child in plan.get("Plans", []))


def _analyze(*models: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE " + ", ".join(model._meta.db_table for model in models))


def test_the_claim_reads_pending_events_only(postgres, api_account):
    # As in the middle of bench/ingest.py: the oldest events processed, a backlog behind them.
    now = timezone.now()
    InboundEvent.objects.bulk_create(
        InboundEvent(account=api_account, dedupe_key=f"k-{i}", body=b"{}", received_at=now,
                     status="processed" if i < 3000 else "pending")
        for i in range(4000)
    )
    _analyze(InboundEvent)
    _, others = _claim_sql()
    plan = _generic_plan(others, [[], 10])

    assert plan["Actual Rows"] == 10
    assert _rows_looked_at(plan, InboundEvent._meta.db_table) < 100  # was 3,010: every processed event


def test_the_oldest_pending_events_are_claimed_first(postgres, api_account, post_hook):
    for i in range(3):
        post_hook("acme-api", api_body(id=f"e-{i}", thread=f"t-{i}"))
    first, _, third = InboundEvent.objects.order_by("pk")
    # the last one stored arrived first (received_at, not the id, says which is oldest)
    InboundEvent.objects.filter(pk=third.pk).update(received_at=first.received_at - timezone.timedelta(seconds=5))

    assert inbound_events_apply(limit=1).applied == 1
    assert set(InboundEvent.objects.filter(status="processed").values_list("pk", flat=True)) == {third.pk}
    assert inbound_events_apply(limit=2).applied == 2
    assert not InboundEvent.objects.filter(status="pending").exists()


def test_updating_a_few_tickets_does_not_scan_them_all(postgres, api_account):
    customer = Customer.objects.create(display_name="Many")
    Ticket.objects.bulk_create(Ticket(subject=f"t{i}", origin_account=api_account, customer=customer)
                               for i in range(3000))
    _analyze(Ticket)
    some = list(Ticket.objects.order_by("pk")[:2])
    rows = json.dumps([{"id": t.pk, "subject": f"renamed {t.pk}"} for t in some])
    plan = _generic_plan(_update_sql(Ticket, ("subject",)), [rows, [t.pk for t in some]])

    assert _rows_looked_at(plan, Ticket._meta.db_table) <= 2  # was 3,000: a scan of every ticket
    assert sorted(Ticket.objects.filter(subject__startswith="renamed").values_list("pk", flat=True)) == [
        t.pk for t in some
    ]


def test_the_batch_identity_lookup_finds_exact_keys_through_the_index(postgres):
    customer = Customer.objects.create(display_name="Many")
    Identity.objects.bulk_create(
        Identity(customer=customer, kind=kind, namespace=namespace, value=f"v{i}@example.com")
        for i in range(1500)
        for kind, namespace in (("email", ""), ("external", "acme-api"))
    )
    _analyze(Identity)
    keys = [["email", "external"], ["", "acme-api"], ["v1@example.com", "v2@example.com"]]
    plan = _generic_plan(select_sql(Identity, ("customer",), _BATCH_WHERE), keys)

    assert plan["Actual Rows"] == 2
    assert _rows_looked_at(plan, Identity._meta.db_table) <= 2  # was 3,000: a scan of every identity

    # the keys asked for and no combination of their parts (external v1, email v2 exist too)
    found = IdentityLookups([
        IdentityRef(kind=IdentityKind.EMAIL, value="v1@example.com"),
        IdentityRef(kind=IdentityKind.EXTERNAL, namespace="acme-api", value="v2@example.com"),
        IdentityRef(kind=IdentityKind.EMAIL, value="nobody@example.com"),
    ])
    email = IdentityRef(kind=IdentityKind.EMAIL, value="v1@example.com")
    external = IdentityRef(kind=IdentityKind.EXTERNAL, namespace="acme-api", value="v2@example.com")
    assert found.get(email).value == "v1@example.com" and found.get(email).kind == "email"
    assert found.get(external).value == "v2@example.com" and found.get(external).kind == "external"
    assert found.get(IdentityRef(kind=IdentityKind.EMAIL, value="nobody@example.com")) is None
