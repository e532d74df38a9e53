"""Which ticket a new customer message belongs to. Matching never crosses customers."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction

from omnidesk.customers.identities import InvalidIdentity, normalize
from omnidesk.customers.models import Customer, Identity
from omnidesk.plugins.contract import IdentityRef, InboundMessage
from omnidesk.plugins.models import ChannelAccount

from .models import Message, Ticket, TicketThread


def thread_key_for(*, customer: Customer, key: str) -> str:
    # Scoped by customer: two people in one public conversation are two tickets.
    return f"{customer.pk}:{key}"


def ticket_find_for_message(
    *, account: ChannelAccount, item: InboundMessage, customer: Customer
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
        thread = (
            TicketThread.objects.select_related("ticket")
            .filter(account=account, key=thread_key_for(customer=customer, key=item.thread_key))
            .first()
        )
        if thread is not None:
            return thread.ticket, "thread"
    if item.ticket_ref:
        ticket = Ticket.objects.filter(pk=item.ticket_ref, customer=customer).first()
        if ticket is not None:
            return ticket, f"ticket reference #{item.ticket_ref}"
    return None, ""


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
