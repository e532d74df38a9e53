"""One ticket: the customer's history, the composer's limits, attachments, merging customers."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Max
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from omnidesk.customers.selectors import customer_list_for_user
from omnidesk.customers.services import MergeInvalid, customer_merge
from omnidesk.plugins.services import account_plugin
from omnidesk.routing.models import Group
from omnidesk.routing.selectors import user_group_ids, user_is_manager
from omnidesk.sla.services import sla_remaining
from omnidesk.tickets.models import Attachment, Message, Ticket
from omnidesk.tickets.replies import CALLBACK_OUTCOMES
from omnidesk.tickets.selectors import ticket_list_for_user

from .access import desk_page
from .context import header
from .forms import MeasureForm, MergeForm
from .selectors import customer_history, customers_to_merge, reply_options, ticket_for_user

#: every attachment downloads (Content-Disposition: attachment); only these keep their own type
_SAFE_TYPES = {"image/png", "image/jpeg", "image/gif", "application/pdf", "text/plain", "text/csv"}
#: a file opened by the browser despite everything runs no script, loads nothing, is its own origin
DOWNLOAD_CSP = "sandbox; default-src 'none'"


def _ticket_or_404(request: HttpRequest, ticket_id: int) -> Ticket:
    ticket = ticket_for_user(user=request.user, ticket_id=ticket_id)
    if ticket is None:
        raise Http404("no such ticket among those you can see")
    return ticket


def _assignable(request: HttpRequest) -> tuple[list[Group], list]:
    groups = Group.objects.all() if user_is_manager(request.user) else Group.objects.filter(pk__in=user_group_ids(request.user))
    users = get_user_model().objects.filter(is_active=True, agent__isnull=False)
    if not user_is_manager(request.user):
        users = users.filter(agent__groups__in=list(groups))
    return list(groups), list(users.distinct().order_by("username"))


@desk_page
@require_GET
def ticket_page(request: HttpRequest, ticket_id: int) -> HttpResponse:
    ticket = _ticket_or_404(request, ticket_id)
    options = reply_options(ticket=ticket)
    groups, agents = _assignable(request)
    seen_up_to = Message.objects.filter(ticket=ticket).aggregate(m=Max("pk"))["m"] or 0
    context = {
        "ticket": ticket,
        "history": customer_history(user=request.user, ticket=ticket),
        "events": ticket.events.select_related("actor_user").order_by("at", "pk"),
        "sla": [(k.replace("_", " ").capitalize(), v) for k, v in sla_remaining(ticket).items()],
        "options": options,
        # the file input exists only where some reply target can send files; the script shows it per target
        "can_attach": any(o.attachments for o in options),
        "composer": {
            "ticket": ticket.pk, "seen_up_to": seen_up_to, "options": [o.as_json() for o in options],
            "measure_url": f"/tickets/{ticket.pk}/measure/",
        },
        "outcomes": CALLBACK_OUTCOMES,
        "statuses": Ticket.Status.choices, "priorities": Ticket.Priority.choices,
        "groups": groups, "agents": agents,
        "identities": ticket.customer.identities.order_by("kind", "value"),
        "merged_customers": ticket.customer.__class__.objects.filter(merged_into=ticket.customer),
        **header(request),
    }
    return render(request, "workspace/ticket.html", context)


@desk_page
@require_POST
def measure(request: HttpRequest, ticket_id: int) -> JsonResponse:
    """The reply's length exactly as the channel's plugin counts it (X: weighted, URLs 23)."""
    ticket = _ticket_or_404(request, ticket_id)
    form = MeasureForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": "invalid", "detail": form.errors.as_text()}, status=400)
    option = next((o for o in reply_options(ticket=ticket) if o.identity.pk == form.cleaned_data["identity"]), None)
    if option is None:
        return JsonResponse({"error": "invalid", "detail": "the customer did not write from that identity"}, status=400)
    plugin = account_plugin(option.account)
    text = form.cleaned_data["text"]
    return JsonResponse({"length": plugin.measure(text), "limit": option.max_length, "unit": option.length_unit})


@desk_page
@require_GET
def attachment(request: HttpRequest, attachment_id: int) -> HttpResponse:
    """Always a download, never rendered by the browser; only from tickets the user may see."""
    visible = ticket_list_for_user(user=request.user).values("pk")
    item = Attachment.objects.filter(pk=attachment_id, message__ticket_id__in=visible).first()
    if item is None:
        raise Http404("no such attachment among those you can see")
    content_type = item.content_type if item.content_type in _SAFE_TYPES else "application/octet-stream"
    response = FileResponse(item.file.open("rb"), as_attachment=True, filename=item.filename or "attachment",
                            content_type=content_type)
    response["Content-Security-Policy"] = DOWNLOAD_CSP  # should a browser ever render it anyway
    return response


@desk_page
def merge(request: HttpRequest, ticket_id: int) -> HttpResponse:
    """GET ?q=: customers the agent may merge into this ticket's customer. POST other=<id>: merge them."""
    ticket = _ticket_or_404(request, ticket_id)
    if request.method == "GET":
        found = customers_to_merge(user=request.user, customer=ticket.customer, query=request.GET.get("q", ""))
        return render(request, "workspace/_merge_results.html", {"found": found, "ticket": ticket})
    if request.method != "POST":
        return HttpResponse(status=405)
    form = MergeForm(request.POST)
    other = None
    if form.is_valid():
        other = customer_list_for_user(user=request.user).filter(pk=form.cleaned_data["other"]).first()
    if other is None:
        return JsonResponse({"error": "invalid", "detail": "no such customer among those you can see"}, status=400)
    try:
        customer_merge(survivor=ticket.customer, merged=other, user=request.user)
    except MergeInvalid as exc:
        return JsonResponse({"error": "merge_invalid", "detail": str(exc)}, status=400)
    return JsonResponse({"ok": True, "detail": f"{other} merged into {ticket.customer}"})


__all__ = ["ticket_page", "measure", "attachment", "merge"]
