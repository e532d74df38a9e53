"""Resolving message authors to customers."""

from __future__ import annotations

import logging
from datetime import datetime

from omnidesk.plugins.contract import Author, IdentityRef

from .identities import InvalidIdentity, normalize
from .models import Customer, Identity

log = logging.getLogger(__name__)


def _lookup(ref: IdentityRef) -> Identity | None:
    return (
        Identity.objects.select_related("customer")
        .filter(kind=ref.kind.value, namespace=ref.namespace, value=ref.value)
        .first()
    )


def _survivor(customer: Customer) -> Customer:
    seen = set()
    while customer.merged_into_id and customer.pk not in seen:
        seen.add(customer.pk)
        customer = Customer.objects.get(pk=customer.merged_into_id)
    return customer


def customer_resolve(*, author: Author, default_region: str = "", seen_at: datetime | None = None) -> tuple[Customer, Identity, list[str]]:
    """The customer behind `author`, creating customer and identities as needed.

    An identity seen before maps to its customer; otherwise an email or phone the channel
    vouches for (`author.also`) that is already known links to that customer. Returns the
    notes on identities that were skipped as invalid, so nothing is dropped silently.
    Raises InvalidIdentity when the primary identity itself is unusable.
    """
    primary_ref = normalize(author.identity, default_region=default_region)
    notes: list[str] = []
    also: list[IdentityRef] = []
    for ref in author.also:
        try:
            also.append(normalize(ref, default_region=default_region))
        except InvalidIdentity as exc:
            notes.append(f"ignored identity: {exc}")

    primary = _lookup(primary_ref)
    if primary is not None:
        customer = _survivor(primary.customer)
    else:
        customer = None
        for ref in also:
            known = _lookup(ref)
            if known is not None:
                customer = _survivor(known.customer)
                break
        if customer is None:
            customer = Customer.objects.create(display_name=author.display_name[:200])
        primary = Identity.objects.create(
            customer=customer,
            kind=primary_ref.kind.value,
            namespace=primary_ref.namespace,
            value=primary_ref.value,
            display_name=author.display_name[:200],
        )
    for ref in also:
        existing = _lookup(ref)
        if existing is None:
            Identity.objects.create(customer=customer, kind=ref.kind.value, namespace=ref.namespace, value=ref.value)
        elif _survivor(existing.customer).pk != customer.pk:
            notes.append(f"{ref.kind.value} {ref.value} belongs to another customer; not merged automatically")

    changed = []
    if author.display_name and primary.display_name != author.display_name[:200]:
        primary.display_name = author.display_name[:200]
        changed.append("display_name")
    if author.followers is not None or author.verified is not None:
        if author.followers is not None:
            primary.followers = author.followers
        if author.verified is not None:
            primary.verified = author.verified
        primary.reach_seen_at = seen_at
        changed += ["followers", "verified", "reach_seen_at"]
    if changed:
        primary.save(update_fields=changed)
    if not customer.display_name and author.display_name:
        customer.display_name = author.display_name[:200]
        customer.save(update_fields=["display_name"])
    return customer, primary, notes


class MergeInvalid(ValueError):
    """A merge the desk refuses; the message says why, for the agent."""


def customer_merge(*, survivor: Customer, merged: Customer, user: object) -> Customer:
    """Fold `merged` into `survivor`: identities move, tickets are re-pointed, `merged_into` is set,
    and every affected ticket records the merge in its audit trail. Returns the survivor."""
    from django.db import transaction

    from omnidesk.tickets.audit import ticket_event_record
    from omnidesk.tickets.models import Ticket, TicketEvent

    if survivor.pk == merged.pk:
        raise MergeInvalid("a customer cannot be merged into itself")
    survivor = _survivor(survivor)
    if survivor.pk == merged.pk or merged.merged_into_id:
        raise MergeInvalid(f"{merged} was already merged into another customer")
    actor_user = user if getattr(user, "is_authenticated", False) else None
    with transaction.atomic():
        moved = [f"{i.kind} {i.value}" for i in Identity.objects.filter(customer=merged)]
        Identity.objects.filter(customer=merged).update(customer=survivor)
        tickets = list(Ticket.objects.select_for_update().filter(customer__in=[merged, survivor]))
        Ticket.objects.filter(customer=merged).update(customer=survivor)
        merged.merged_into = survivor
        merged.save(update_fields=["merged_into"])
        note = f"customer {merged} (#{merged.pk}) merged into {survivor} (#{survivor.pk})"
        if moved:
            note += f"; identities moved: {', '.join(moved)}"
        for ticket in tickets:
            ticket_event_record(
                ticket=ticket, action="customer_merged", actor=TicketEvent.Actor.AGENT, actor_user=actor_user,
                field="customer", old=merged.pk, new=survivor.pk, note=note,
            )
    return survivor
