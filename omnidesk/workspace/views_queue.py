"""The live queue: the page, and one row at a time for the websocket's updates."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from omnidesk.tickets.selectors import ticket_list_for_user

from .access import desk_page
from .context import header
from .selectors import queue_rows


@desk_page
def queue(request: HttpRequest) -> HttpResponse:
    return render(request, "workspace/queue.html", {"rows": list(queue_rows(user=request.user)), **header(request)})


@desk_page
def queue_row(request: HttpRequest, ticket_id: int) -> HttpResponse:
    """200 with the <tr>; 204 when the ticket left the queue (solved, closed); 404 when not yours to see."""
    rows = list(queue_rows(user=request.user, ticket_id=ticket_id))
    if rows:
        return render(request, "workspace/_row.html", {"t": rows[0]})
    if ticket_list_for_user(user=request.user).filter(pk=ticket_id).exists():
        return HttpResponse(status=204)
    raise Http404("no such ticket among those you can see")
