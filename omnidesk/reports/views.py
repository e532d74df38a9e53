"""The managers' parity page: charts, figures with drill-down links, definitions. Thin."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe

from omnidesk.routing.models import Group
from omnidesk.routing.selectors import user_can_work, user_group_ids, user_is_manager

from .charts import duration, percent, report_charts
from .definitions import DEFINITIONS
from .parity import COMPARED, parity_report, rule_from
from .selectors import GroupNotVisible, ReportInputInvalid, report_scope_for_user

DRILL_URL = "/api/v1/reports/parity/tickets/"

#: (label, figure key, how to show it, drill-down metric, definition key)
ROWS: tuple[tuple[str, str, str, str, str], ...] = (
    ("Volume", "volume", "count", "volume", "volume"),
    ("Share answered", "share_answered", "proportion", "unanswered", "share_answered"),
    ("First response p50", "first_response.p50", "time", "first_response", "first_response"),
    ("First response p90", "first_response.p90", "time", "first_response", "first_response"),
    ("First response p99", "first_response.p99", "time", "first_response", "first_response"),
    ("First response p50 (business)", "first_response_business.p50", "time", "first_response_business", "first_response_business"),
    ("First response p90 (business)", "first_response_business.p90", "time", "first_response_business", "first_response_business"),
    ("First response p99 (business)", "first_response_business.p99", "time", "first_response_business", "first_response_business"),
    ("Next response p50", "next_response.p50", "time", "next_response", "next_response"),
    ("Next response p90", "next_response.p90", "time", "next_response", "next_response"),
    ("Resolution p50", "resolution.p50", "time", "resolution", "resolution"),
    ("Resolution p90", "resolution.p90", "time", "resolution", "resolution"),
    ("First-response SLA attainment", "sla_first_response", "proportion", "sla_first_response_missed", "sla_first_response"),
    ("Resolution SLA attainment", "sla_resolution", "proportion", "sla_resolution_missed", "sla_resolution"),
    ("Reopen rate", "reopen_rate", "proportion", "reopened", "reopen_rate"),
    ("Transfers per ticket", "transfers_per_ticket", "ratio", "transferred", "transfers_per_ticket"),
    ("Handed off public → private", "handoff_share", "proportion", "handed_off", "handoff_share"),
    ("Ingest lag p50", "ingest_lag.p50", "time", "ingest_lag", "ingest_lag"),
    ("Ingest lag p99", "ingest_lag.p99", "time", "ingest_lag", "ingest_lag"),
)
_PARITY_KEY = {"share_answered": "share_answered", "first_response.p50": "first_response",
               "first_response_business.p50": "first_response_business", "next_response.p50": "next_response",
               "resolution.p50": "resolution", "sla_first_response": "sla_first_response",
               "sla_resolution": "sla_resolution", "reopen_rate": "reopen_rate"}


def _cell(block: dict[str, Any], key: str, how: str, drill: str, base: dict[str, str]) -> dict[str, Any]:
    name, _, q = key.partition(".")
    fig = block[name]
    if how == "count":
        text, n = str(fig), fig
    elif how == "time":
        text, n = duration(fig[q]), fig["n"]
    elif how == "ratio":
        text, n = ("—" if fig["value"] is None else f'{fig["value"]:.2f}'), fig["n"]
    else:
        text, n = percent(fig["value"]), fig["n"]
        if fig["value"] is not None:
            text += f' [{percent(fig["ci_low"])}–{percent(fig["ci_high"])}]'
    verdicts = []
    parity = block.get("parity", {}).get(_PARITY_KEY.get(key, ""), {})
    for against in ("vs_best", "vs_pool"):
        v = parity.get(against, {}).get("verdict")
        if v in ("gap", "small_sample"):
            verdicts.append((v, f'{"gap" if v == "gap" else "sample too small"} {against.replace("_", " ")}'))
    link = DRILL_URL + "?" + urlencode({**base, "channel": block["channel"], "metric": drill})
    return {"text": text, "n": n, "link": link, "verdicts": verdicts}


@login_required
def parity_page(request: HttpRequest) -> HttpResponse:
    if not user_can_work(request.user):
        return render(request, "reports/parity.html", {"error": "Your account has no agent profile."}, status=403)
    p = request.GET
    try:
        scope = report_scope_for_user(user=request.user, since=p.get("since"), until=p.get("until"), group=p.get("group"))
        rule = rule_from(materiality=p.get("materiality"), alpha=p.get("alpha"), min_n=p.get("min_n"))
    except GroupNotVisible as exc:
        return render(request, "reports/parity.html", {"error": str(exc)}, status=404)
    except (ReportInputInvalid, ValueError) as exc:
        return render(request, "reports/parity.html", {"error": str(exc)}, status=400)
    report = parity_report(scope=scope, rule=rule)
    base = {"since": scope.since.date().isoformat(), "until": scope.until.date().isoformat()}
    if p.get("group"):
        base["group"] = p["group"]
    blocks = [*report["channels"], report["pooled"]]
    rows = [
        {"label": label, "definition": def_key,
         "cells": [_cell(b, key, how, drill, base) for b in blocks]}
        for label, key, how, drill, def_key in ROWS
    ]
    groups = Group.objects.all() if user_is_manager(request.user) else Group.objects.filter(pk__in=user_group_ids(request.user))
    labels = {c.key: c.label for c in COMPARED}
    context = {
        "report": report, "rows": rows, "channels": [b["channel"] for b in blocks], "base": base,
        "charts": {k: mark_safe(v) for k, v in report_charts(report).items()},  # noqa: S308 (built with escape())
        "definitions": DEFINITIONS, "groups": groups.order_by("name"), "group": p.get("group", ""),
        "flags": [{**f, "label": labels.get(f["metric"], f["metric"])} for f in report["flags"]],
        "csv_link": "/api/v1/reports/parity/?" + urlencode({**base, "format": "csv"}),
    }
    return render(request, "reports/parity.html", context)
