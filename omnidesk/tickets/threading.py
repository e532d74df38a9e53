"""Which ticket a new customer message belongs to. Matching never crosses customers."""

from __future__ import annotations

import logging

from django.db import IntegrityError, connection, transaction

from omnidesk.customers.identities import InvalidIdentity, normalize
from omnidesk.customers.models import Customer, Identity
from omnidesk.plugins.contract import IdentityRef, InboundMessage
from omnidesk.plugins.models import ChannelAccount
from omnidesk.rows import rows_insert, select_with

from .models import Message, Ticket, TicketThread


def thread_key_for(*, customer: Customer, key: str) -> str:
    # Scoped by customer: two people in one public conversation are two tickets.
    return f"{customer.pk}:{key}"


class ThreadLookups:
    """The thread keys of a whole apply batch, read in one query.

    A key it was built for (or any key of a customer the batch created) is answered from
    memory, a miss meaning "no such thread"; threads the batch binds are added as it goes. A
    prefetched ticket is handed out once: a ticket the batch already touched is read again, so
    nothing written meanwhile (rules, an acknowledgement) is overwritten with stale values.
    """

    def __init__(self, keys: set[tuple[int, str]], customers_created: set[int]) -> None:
        self._rows: dict[tuple[int, str], TicketThread | None] = dict.fromkeys(keys)
        self._customers_created = customers_created
        self.touched: set[int] = set()
        self.disabled = False
        if keys:
            # IN lists per column, the exact pairs picked here (cheaper to build than an OR per key).
            accounts, names = [*{account_id for account_id, _ in keys}], [*{key for _, key in keys}]
            if connection.vendor == "postgresql":
                found = select_with(TicketThread, ("ticket",), 'm."account_id" = ANY(%s) AND m."key" = ANY(%s)',
                                    [accounts, names])
            else:
                found = TicketThread.objects.select_related("ticket").filter(account_id__in=accounts, key__in=names)
            for thread in found:
                if (thread.account_id, thread.key) in self._rows:
                    self._rows[(thread.account_id, thread.key)] = thread

    def covers(self, account_id: int, customer: Customer, key: str) -> bool:
        return not self.disabled and (
            (account_id, key) in self._rows or customer.pk in self._customers_created
        )

    def get(self, account_id: int, key: str) -> TicketThread | None:
        return self._rows.get((account_id, key))

    def add(self, thread: TicketThread) -> None:
        self._rows[(thread.account_id, thread.key)] = thread

    def ticket_of(self, thread: TicketThread) -> Ticket:
        if thread.ticket_id in self.touched:
            return Ticket.objects.get(pk=thread.ticket_id)
        return thread.ticket


def thread_bind(*, account: ChannelAccount, customer: Customer, key: str, ticket: Ticket,
                known: ThreadLookups | None = None) -> None:
    """Point the channel's conversation key at `ticket` (a new binding, or a closed ticket's successor)."""
    full = thread_key_for(customer=customer, key=key)
    if known is not None and known.covers(account.pk, customer, full):
        thread = known.get(account.pk, full)
        if thread is None:
            thread = TicketThread(account=account, key=full, ticket=ticket)
            rows_insert([thread])
            known.add(thread)
        else:
            TicketThread.objects.filter(pk=thread.pk).update(ticket=ticket)
            thread.ticket = ticket
        return
    if not TicketThread.objects.filter(account=account, key=full).update(ticket=ticket):
        TicketThread.objects.create(account=account, key=full, ticket=ticket)


def ticket_find_for_message(
    *, account: ChannelAccount, item: InboundMessage, customer: Customer, known: ThreadLookups | None = None
) -> tuple[Ticket | None, str]:
    """The ticket `item` continues and how it was found, or (None, "") for a new conversation.

    Order: the messages it answers (most specific reference first), the channel's thread
    key, then a ticket number the customer quoted.
    """
    if item.references:
        refs = list(dict.fromkeys(item.references))[:50]
        found = {
            m.external_id: m.ticket
            for m in Message.objects.select_related("ticket").filter(
                account=account, external_id__in=refs, ticket__customer=customer
            )
        }
        for ref in refs:
            if ref in found:
                return found[ref], f"reference {ref}"
    if item.thread_key:
        ticket = _thread_ticket(account, customer, thread_key_for(customer=customer, key=item.thread_key), known)
        if ticket is not None:
            return ticket, "thread"
    if item.ticket_ref:
        ticket = Ticket.objects.filter(pk=item.ticket_ref, customer=customer).first()
        if ticket is not None:
            return ticket, f"ticket reference #{item.ticket_ref}"
    return None, ""


def _thread_ticket(account: ChannelAccount, customer: Customer, key: str, known: ThreadLookups | None) -> Ticket | None:
    if known is not None and known.covers(account.pk, customer, key):
        thread = known.get(account.pk, key)
        return None if thread is None else known.ticket_of(thread)
    thread = TicketThread.objects.select_related("ticket").filter(account=account, key=key).first()
    return None if thread is None else thread.ticket


def conversation_link(*, ticket: Ticket, account: ChannelAccount, recipient: IdentityRef | None, thread_key: str) -> None:
    """After a reply opened a new conversation (comment → Messenger), make the answer land on this ticket.

    The recipient identity is linked to the ticket's customer (never taken from another customer),
    and the new thread key is bound to the ticket.
    """
    customer = ticket.customer
    if recipient is not None:
        try:
            ref = normalize(recipient, default_region=account.default_region)
        except InvalidIdentity as exc:
            logging.getLogger(__name__).warning("delivery recipient ignored: %s", exc)
            return
        try:
            with transaction.atomic():
                identity, _ = Identity.objects.get_or_create(
                    kind=ref.kind.value, namespace=ref.namespace, value=ref.value, defaults={"customer": customer}
                )
        except IntegrityError:
            identity = Identity.objects.get(kind=ref.kind.value, namespace=ref.namespace, value=ref.value)
        if identity.customer_id != customer.pk:
            return  # known as someone else: never merge silently
    if thread_key:
        TicketThread.objects.update_or_create(
            account=account, key=thread_key_for(customer=customer, key=thread_key), defaults={"ticket": ticket}
        )
