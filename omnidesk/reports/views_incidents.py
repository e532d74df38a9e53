"""The parity report's incident view, as a page. Thin."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from omnidesk.incidents.selectors import incident_list_for_user
from omnidesk.routing.selectors import user_can_work

from .charts import duration, percent
from .incidents import incident_report


@login_required
def incident_page(request: HttpRequest, incident_id: int) -> HttpResponse:
    if not user_can_work(request.user):
        return render(request, "reports/incident.html", {"error": "Your account has no agent profile."}, status=403)
    incident = incident_list_for_user(user=request.user).filter(pk=incident_id).first()
    if incident is None:
        return render(request, "reports/incident.html", {"error": f"No incident {incident_id} that you can see."}, status=404)
    report = incident_report(incident=incident, user=request.user)
    rows = [
        {"channel": b["channel"], "tickets": b["tickets"], "answered": b["answered"],
         "share": percent(b["share_answered"]["value"]),
         "ci": f'{percent(b["share_answered"]["ci_low"])}–{percent(b["share_answered"]["ci_high"])}'
         if b["share_answered"]["ci_low"] is not None else "",
         "p50": duration(b["response"]["p50"]), "p90": duration(b["response"]["p90"])}
        for b in [*report["channels"], report["pooled"]]
    ]
    return render(request, "reports/incident.html", {"incident": incident, "rows": rows})
