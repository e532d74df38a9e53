from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from omnidesk.plugins.registry import all_plugins
from omnidesk.tickets.selectors import ticket_list_for_user


@login_required
def home(request):  # type: ignore[no-untyped-def]
    tickets = ticket_list_for_user(user=request.user).order_by("-updated_at")[:50]
    return render(request, "workspace/home.html", {"tickets": tickets, "plugins": all_plugins()})
