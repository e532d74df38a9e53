import json
import logging
import uuid

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def demo_callback(request):  # type: ignore[no-untyped-def]
    """Stands in for the remote system behind the demo API account (routed only under DEBUG)."""
    try:
        reply = json.loads(request.body)
    except ValueError:
        return JsonResponse({"error": "not JSON"}, status=400)
    logging.getLogger("omnidesk.demo").info("demo widget received reply for ticket %s: %.80s", reply.get("ticket"), reply.get("text"))
    return JsonResponse({"id": f"widget-{uuid.uuid4().hex[:12]}"})


