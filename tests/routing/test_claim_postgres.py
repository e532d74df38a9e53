"""50 agents claiming concurrently on PostgreSQL: every ticket claimed exactly once, none lost."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from omnidesk.customers.models import Customer
from omnidesk.routing.models import Agent, Group
from omnidesk.routing.queue import queue_claim_next
from omnidesk.tickets.models import Ticket, TicketEvent

TICKETS = 5000
AGENTS = 50


@pytest.mark.django_db(transaction=True)
def test_fifty_agents_claim_five_thousand_tickets_exactly_once(postgres, api_account):
    support = Group.objects.get(name="Support")
    billing = Group.objects.create(name="Billing")
    customer = Customer.objects.create(display_name="Many")
    now = timezone.now()
    priorities = ["low", "normal", "high", "urgent"]
    Ticket.objects.bulk_create(
        Ticket(subject=f"t{i}", origin_account=api_account, customer=customer, group=support,
               priority=priorities[i % 4], sla_due_at=now + timedelta(seconds=i % 997))
        for i in range(TICKETS)
    )
    foreign = Ticket.objects.create(subject="billing", origin_account=api_account, customer=customer, group=billing)
    users = []
    for i in range(AGENTS):
        user = get_user_model().objects.create_user(f"claimer-{i}")
        agent = Agent.objects.create(user=user, capacity=TICKETS, presence="online")
        agent.groups.set([support])
        users.append(get_user_model().objects.select_related("agent").get(pk=user.pk))

    claimed: list[list[int]] = [[] for _ in range(AGENTS)]
    errors: list[BaseException] = []
    start = threading.Barrier(AGENTS)

    def work(n: int) -> None:
        try:
            start.wait()
            while True:
                ticket = queue_claim_next(user=users[n])
                if ticket is None:
                    return
                claimed[n].append(ticket.pk)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    began = time.monotonic()
    threads = [threading.Thread(target=work, args=(n,)) for n in range(AGENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a claiming agent hung"
    # Speed is bench/claim.py's business; this test proves exactly-once under contention.
    print(f"{TICKETS} claims by {AGENTS} agents in {time.monotonic() - began:.1f}s")
    assert not errors, errors[:3]
    every = [pk for got in claimed for pk in got]
    assert len(every) == TICKETS and len(set(every)) == TICKETS  # each once, none lost
    assert foreign.pk not in every
    assert not Ticket.objects.filter(group=support, assignee__isnull=True).exists()
    per_ticket = Counter(TicketEvent.objects.filter(action="claimed").values_list("ticket_id", flat=True))
    assert len(per_ticket) == TICKETS and set(per_ticket.values()) == {1}
    owners = dict(Ticket.objects.filter(group=support).values_list("pk", "assignee_id"))
    for n, got in enumerate(claimed):
        assert all(owners[pk] == users[n].pk for pk in got)
