"""Resolving message authors to customers."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from django.db import connection

from omnidesk.plugins.contract import Author, IdentityRef
from omnidesk.rows import rows_insert, select_with

from .identities import InvalidIdentity, normalize
from .models import Customer, Identity

log = logging.getLogger(__name__)


IdentityKey = tuple[str, str, str]
#: the batch's identities (IdentityLookups), on PostgreSQL: the exact keys, each found through the
#: unique index. One IN list per column made a prepared statement's plan a scan of every identity
#: (PostgreSQL 15 reckons an index probe per combination of the three lists): 1 ms at 16,000.
_BATCH_WHERE = '(m."kind", m."namespace", m."value") IN (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))'


def identity_key(ref: IdentityRef) -> IdentityKey:
    return (ref.kind.value, ref.namespace, ref.value)


class IdentityLookups:
    """The identities of a whole apply batch, read in one query.

    For the (normalized) refs it was built for, a miss means "not in the database when the
    batch started"; identities the batch creates are added as it goes. A ref it was not built
    for is looked up in the database. The caller drops it when a savepoint rolls back (the rows
    it remembers may then be gone): see `disabled`.
    """

    def __init__(self, refs: Iterable[IdentityRef]) -> None:
        keys = {identity_key(ref) for ref in refs}
        self._rows: dict[IdentityKey, Identity | None] = dict.fromkeys(keys)
        self.disabled = False
        #: customers this batch created: nothing of theirs can predate the batch
        self.customers_created: set[int] = set()
        if keys:
            # An OR of one AND per key costs the ORM several times more CPU to build than the query
            # costs PostgreSQL: there the keys go as three arrays, elsewhere one IN list per column
            # (the exact keys picked here).
            if connection.vendor == "postgresql":
                ordered = list(keys)
                found = select_with(Identity, ("customer",), _BATCH_WHERE, [[key[i] for key in ordered] for i in range(3)])
            else:
                kinds, namespaces, values = ([*{key[i] for key in keys}] for i in range(3))
                found = Identity.objects.select_related("customer").filter(
                    kind__in=kinds, namespace__in=namespaces, value__in=values
                )
            for identity in found:
                key = (identity.kind, identity.namespace, identity.value)
                if key in self._rows:
                    self._rows[key] = identity

    def covers(self, ref: IdentityRef) -> bool:
        return not self.disabled and identity_key(ref) in self._rows

    def get(self, ref: IdentityRef) -> Identity | None:
        return self._rows[identity_key(ref)]

    def add(self, identity: Identity) -> None:
        self._rows[(identity.kind, identity.namespace, identity.value)] = identity


def _lookup(ref: IdentityRef, known: IdentityLookups | None = None) -> Identity | None:
    if known is not None and known.covers(ref):
        return known.get(ref)
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


def author_refs(author: Author, *, default_region: str = "") -> tuple[IdentityRef, list[IdentityRef], list[str]]:
    """The author's primary identity and the valid `also` ones, normalized (duplicates dropped),
    with a note per invalid `also` identity. Raises InvalidIdentity for an unusable primary."""
    primary = normalize(author.identity, default_region=default_region)
    notes: list[str] = []
    also: dict[IdentityKey, IdentityRef] = {}
    for ref in author.also:
        try:
            normal = normalize(ref, default_region=default_region)
        except InvalidIdentity as exc:
            notes.append(f"ignored identity: {exc}")
            continue
        if identity_key(normal) != identity_key(primary):
            also.setdefault(identity_key(normal), normal)
    return primary, list(also.values()), notes


def customer_resolve(
    *, author: Author, default_region: str = "", seen_at: datetime | None = None, known: IdentityLookups | None = None
) -> tuple[Customer, Identity, list[str]]:
    """The customer behind `author`, creating customer and identities as needed.

    An identity seen before maps to its customer; otherwise an email or phone the channel
    vouches for (`author.also`) that is already known links to that customer. Returns the
    notes on identities that were skipped as invalid, so nothing is dropped silently.
    Raises InvalidIdentity when the primary identity itself is unusable. `known`: the batch's
    identities read beforehand (see IdentityLookups), saving a query per identity.
    """
    primary_ref, also, notes = author_refs(author, default_region=default_region)
    found = {identity_key(ref): _lookup(ref, known) for ref in also}

    primary = _lookup(primary_ref, known)
    new: list[Identity] = []
    created = primary is None
    if primary is not None:
        customer = _survivor(primary.customer)
    else:
        linked = next((identity for identity in found.values() if identity is not None), None)
        customer = _survivor(linked.customer) if linked is not None else None
        if customer is None:
            customer = Customer(display_name=author.display_name[:200])
            rows_insert([customer])
            if known is not None:
                known.customers_created.add(customer.pk)
        primary = Identity(
            customer=customer,
            kind=primary_ref.kind.value,
            namespace=primary_ref.namespace,
            value=primary_ref.value,
            display_name=author.display_name[:200],
        )
        new.append(primary)
    for ref in also:
        existing = found[identity_key(ref)]
        if existing is None:
            new.append(Identity(customer=customer, kind=ref.kind.value, namespace=ref.namespace, value=ref.value))
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
    if new:  # one INSERT for the primary and the `also` identities
        rows_insert(new)
        for identity in new:
            if known is not None:
                known.add(identity)
    if changed and not created:
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
