"""Claims made together (PostgreSQL): agents of other groups, the same agent twice, a manager and an agent at
capacity in one group of claims each get what they would have got alone, in the order they asked."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from omnidesk.customers.models import Customer
from omnidesk.routing.models import Agent, Group
from omnidesk.routing.queue import AtCapacity, _claims_in_rounds, queue_claim_next
from omnidesk.tickets.models import Ticket, TicketEvent


def _people(names_groups, *, capacity=20):  # type: ignore[no-untyped-def]
    out = []
    for name, groups in names_groups:
        user = get_user_model().objects.create_user(name)
        Agent.objects.create(user=user, capacity=capacity, presence="online").groups.set(groups)
        out.append(get_user_model().objects.select_related("agent").get(pk=user.pk))
    return out


def _tickets(account, group, n, *, first_due_in):  # type: ignore[no-untyped-def]
    customer = Customer.objects.create(display_name=f"{group.name} customer")
    now = timezone.now()
    return [Ticket.objects.create(subject=f"{group.name} {i}", origin_account=account, customer=customer, group=group,
                                  sla_due_at=now + first_due_in + timedelta(minutes=i)) for i in range(n)]


@pytest.mark.django_db
def test_one_group_of_claims_answers_each_as_if_alone(postgres, api_account, manager):
    support = Group.objects.get(name="Support")
    billing = Group.objects.create(name="Billing")
    s1, s2, s3 = _tickets(api_account, support, 3, first_due_in=timedelta(hours=1))
    b1, b2 = _tickets(api_account, billing, 2, first_due_in=timedelta(hours=2))
    ann, bob, cat = _people([("ann", [support]), ("bob", [billing]), ("cat", [support])])
    Agent.objects.filter(user=cat).update(capacity=1)
    Ticket.objects.create(subject="held", origin_account=api_account, customer=s1.customer, group=support,
                          assignee=cat, status="pending")
    cat = get_user_model().objects.select_related("agent").get(pk=cat.pk)
    meg = get_user_model().objects.select_related("agent").get(pk=manager.pk)

    asks = [(ann, ann.agent), (bob, bob.agent), (ann, ann.agent), (cat, cat.agent), (meg, meg.agent)]
    with CaptureQueriesContext(connection) as queries:
        got = _claims_in_rounds(asks)

    # ann first: the most urgent of Support; bob: Billing's; ann again: the next of Support; cat: at
    # capacity; the manager, of every group: what is left most urgent (s3 is due before b2)
    assert [t.pk if isinstance(t, Ticket) else t for t in got[:3]] == [s1.pk, b1.pk, s2.pk]
    assert isinstance(got[3], AtCapacity) and "1 open ticket" in str(got[3])
    assert got[4].pk == s3.pk
    assert [t.assignee_id for t in (got[0], got[1], got[2], got[4])] == [ann.pk, bob.pk, ann.pk, meg.pk]
    # rounds: ann+bob(other groups)+cat(full); bob+ann again(other groups); ann again; the manager
    assert len(queries) == 4, [q["sql"][:60] for q in queries]
    owners = dict(Ticket.objects.filter(pk__in=[s1.pk, s2.pk, s3.pk, b1.pk, b2.pk]).values_list("pk", "assignee_id"))
    assert owners == {s1.pk: ann.pk, s2.pk: ann.pk, s3.pk: meg.pk, b1.pk: bob.pk, b2.pk: None}
    events = {e.ticket_id: (e.actor_user_id, e.new, e.note) for e in TicketEvent.objects.filter(action="claimed")}
    assert events == {
        s1.pk: (ann.pk, ann.pk, "assignee none → ann (next ticket)"),
        b1.pk: (bob.pk, bob.pk, "assignee none → bob (next ticket)"),
        s2.pk: (ann.pk, ann.pk, "assignee none → ann (next ticket)"),
        s3.pk: (meg.pk, meg.pk, "assignee none → meg (next ticket)"),
    }


@pytest.mark.django_db
def test_more_asking_than_tickets_the_first_to_ask_get_them(postgres, api_account):
    support = Group.objects.get(name="Support")
    first, second = _tickets(api_account, support, 2, first_due_in=timedelta(hours=1))
    people = _people([(f"p{i}", [support]) for i in range(4)])
    got = _claims_in_rounds([(p, p.agent) for p in people])
    assert [t.pk if t else None for t in got] == [first.pk, second.pk, None, None]


@pytest.mark.django_db(transaction=True)
def test_teams_claiming_at_once_each_get_only_their_own(postgres, api_account):
    """Threads of two teams and skills claim together through the group writer: every ticket once, each to
    an agent who may take it, none lost."""
    support = Group.objects.get(name="Support")
    billing = Group.objects.create(name="Billing")
    theirs = {support.pk: _tickets(api_account, support, 150, first_due_in=timedelta(hours=1)),
              billing.pk: _tickets(api_account, billing, 150, first_due_in=timedelta(minutes=30))}
    spanish = theirs[support.pk][::10]
    Ticket.objects.filter(pk__in=[t.pk for t in spanish]).update(tags=["skill:spanish"])
    people = _people([(f"s{i}", [support]) for i in range(8)] + [(f"b{i}", [billing]) for i in range(8)],
                     capacity=1000)
    Agent.objects.filter(user__username__in=["s0", "s1"]).update(skills=["spanish"])
    people = [get_user_model().objects.select_related("agent").get(pk=p.pk) for p in people]
    claimed: dict[int, list[int]] = {p.pk: [] for p in people}
    errors: list[BaseException] = []
    start = threading.Barrier(len(people))

    def work(user) -> None:  # type: ignore[no-untyped-def]
        try:
            start.wait()
            while (ticket := queue_claim_next(user=user)) is not None:
                claimed[user.pk].append(ticket.pk)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads), errors[:3]
    every = Counter(pk for got in claimed.values() for pk in got)
    assert set(every.values()) == {1} and len(every) == 300  # each once, none lost
    group_of = {t.pk: g for g, ts in theirs.items() for t in ts}
    skilled = {p.pk for p in people if p.username in ("s0", "s1")}
    for p in people:
        assert {group_of[pk] for pk in claimed[p.pk]} <= {p.agent.groups.get().pk}, p.username
        if p.pk not in skilled:
            assert not set(claimed[p.pk]) & {t.pk for t in spanish}, p.username
    assert Counter(TicketEvent.objects.filter(action="claimed").values_list("ticket_id", flat=True)) == every
    # claims were made together: a round's events share its time, and some rounds mixed both teams
    rounds: dict = {}
    for ticket_id, at in TicketEvent.objects.filter(action="claimed").values_list("ticket_id", "at"):
        rounds.setdefault(at, set()).add(group_of[ticket_id])
    assert len(rounds) < 300 and any(len(groups) == 2 for groups in rounds.values())


@pytest.mark.django_db
def test_a_round_reads_a_few_rows_however_many_tickets_wait_or_are_held(postgres, api_account):
    """Planned as a prepared statement is (generic): the pick walks the queue-order index from its head,
    and an agent's capacity check counts held tickets up to the capacity, not all of them."""
    from tests.core.test_ingest_plans import _analyze, _generic_plan, _rows_looked_at

    support = Group.objects.get(name="Support")
    waiting = _tickets(api_account, support, 3000, first_due_in=timedelta(hours=1))
    ann, bob = _people([("ann", [support]), ("bob", [support])], capacity=5)
    Ticket.objects.filter(pk__in=[t.pk for t in waiting[1000:1600]]).update(assignee=ann, status="open")
    _analyze(Ticket, TicketEvent)
    from omnidesk.routing.queue import _claim_note, _claim_sql

    now = timezone.now()
    plan = _generic_plan(_claim_sql(scoped=True, skills=0), [
        [ann.pk, bob.pk], [5, 5], [_claim_note(ann), _claim_note(bob)], now, now])
    # ann holds 600 and is at capacity after counting 5; bob gets the head of the queue
    assert _rows_looked_at(plan, Ticket._meta.db_table) < 40
    assert Ticket.objects.get(pk=waiting[0].pk).assignee_id == bob.pk
    assert Ticket.objects.filter(assignee=ann).count() == 600


@pytest.mark.django_db(transaction=True)
def test_a_round_that_fails_is_the_error_of_its_own_agents_only(postgres, api_account):
    """Rounds are committed one by one: an agent served by an earlier round gets the ticket it was
    given, the agents of the failing round and after it get the database's error (injected at the
    driver boundary on the second claim statement)."""
    from django.db import OperationalError

    support = Group.objects.get(name="Support")
    billing = Group.objects.create(name="Billing")
    (s1,) = _tickets(api_account, support, 1, first_due_in=timedelta(hours=1))
    (b1,) = _tickets(api_account, billing, 1, first_due_in=timedelta(hours=1))
    ann, bob = _people([("ann", [support]), ("bob", [billing])])
    statements = []

    def second_claim_fails(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        if sql.startswith("WITH who AS"):
            statements.append(sql)
            if len(statements) == 2:
                raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(second_claim_fails):
        got = _claims_in_rounds([(ann, ann.agent), (bob, bob.agent)])
    assert got[0].pk == s1.pk and isinstance(got[1], OperationalError)
    assert Ticket.objects.get(pk=s1.pk).assignee_id == ann.pk and Ticket.objects.get(pk=b1.pk).assignee_id is None
    # a first round that fails is every agent's error, raised
    statements.clear()
    statements.append("the first statement now counts as the second")
    with connection.execute_wrapper(second_claim_fails), pytest.raises(OperationalError):
        _claims_in_rounds([(bob, bob.agent)])
    assert Ticket.objects.get(pk=b1.pk).assignee_id is None


@pytest.mark.django_db(transaction=True)
def test_the_claim_is_planned_once_per_connection_not_on_every_call(postgres, api_account):
    """Its generic plan (the one the test above checks) from the first call on: PostgreSQL, left to choose,
    planned it for its parameters on every call, 2-3 ms of its CPU per round (bench/claim.py)."""
    support = Group.objects.get(name="Support")
    _tickets(api_account, support, 30, first_due_in=timedelta(hours=1))
    people = _people([(f"p{i}", [support]) for i in range(3)])
    for _ in range(8):
        _claims_in_rounds([(user, user.agent) for user in people])
    with connection.cursor() as cursor:
        cursor.execute("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE 'WITH who AS%%'")
        assert cursor.fetchall() == [(8, 0)]
