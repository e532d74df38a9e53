import json
import logging
import uuid

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from omnidesk.plugins.registry import all_plugins
from omnidesk.tickets.selectors import ticket_list_for_user


@login_required
def home(request):  # type: ignore[no-untyped-def]
    tickets = ticket_list_for_user(user=request.user).order_by("-updated_at")[:50]
    return render(request, "workspace/home.html", {"tickets": tickets, "plugins": all_plugins()})


@csrf_exempt
def demo_callback(request):  # type: ignore[no-untyped-def]
    """Stands in for the remote system behind the demo API account (routed only under DEBUG)."""
    try:
        reply = json.loads(request.body)
    except ValueError:
        return JsonResponse({"error": "not JSON"}, status=400)
    logging.getLogger("omnidesk.demo").info("demo widget received reply for ticket %s: %.80s", reply.get("ticket"), reply.get("text"))
    return JsonResponse({"id": f"widget-{uuid.uuid4().hex[:12]}"})
