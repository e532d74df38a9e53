"""The parity report over the API: JSON or CSV, and the tickets behind every figure. Thin."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ParseError
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from omnidesk.reports.export import report_csv
from omnidesk.reports.metrics import Scope
from omnidesk.reports.parity import parity_report, rule_from
from omnidesk.reports.selectors import (
    DRILLDOWN_METRICS,
    GroupNotVisible,
    ReportInputInvalid,
    report_scope_for_user,
    report_tickets,
)

from .pagination import Pagination
from .permissions import IsDeskStaff
from .serializers import ErrorSerializer


class CSVRenderer(BaseRenderer):
    """`?format=csv`: the report one row per channel (then the pool), or the drill-down's ticket ids."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if isinstance(data, dict) and "channels" in data:
            return report_csv(data).encode()
        if isinstance(data, dict) and "results" in data:
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["ticket_id", "channel", "status"])
            for t in data["results"]:
                writer.writerow([t["id"], t["channel"], t["status"]])
            return out.getvalue().encode()
        return json.dumps(data).encode()  # an error body stays readable


_SCOPE_PARAMS = [
    OpenApiParameter("since", OpenApiTypes.STR, description="YYYY-MM-DD (included) on customer_first_message_at; default until − 30 days"),
    OpenApiParameter("until", OpenApiTypes.STR, description="YYYY-MM-DD (excluded); default tomorrow"),
    OpenApiParameter("group", OpenApiTypes.STR, description="a group id or name (agents: one of their groups)"),
]
_RULE_PARAMS = [
    OpenApiParameter("materiality", OpenApiTypes.FLOAT, description="relative gap that matters, default 0.2"),
    OpenApiParameter("alpha", OpenApiTypes.FLOAT, description="significance level, default 0.05"),
    OpenApiParameter("min_n", OpenApiTypes.INT, description="smaller samples are never flagged, default 30"),
    OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"]),
]


class DrillTicketSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    channel = serializers.CharField(source="origin_account.kind")
    status = serializers.CharField()
    group = serializers.IntegerField(source="group_id", allow_null=True)
    customer_first_message_at = serializers.DateTimeField()
    first_response_at = serializers.DateTimeField(allow_null=True)
    url = serializers.SerializerMethodField()

    def get_url(self, obj: Any) -> str:
        return f"/api/v1/tickets/{obj.pk}/"


class DrillTicketPageSerializer(serializers.Serializer):
    """One page of the drill-down (limit/offset pagination)."""

    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = DrillTicketSerializer(many=True)


class ParityReportViewSet(viewsets.ViewSet):
    """Channel parity: is every channel served as well as the others? Definitions: docs/reports.md."""

    permission_classes = [IsDeskStaff]
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]

    def _scope(self, request: Request) -> Scope:
        p = request.query_params
        try:
            return report_scope_for_user(user=request.user, since=p.get("since"), until=p.get("until"), group=p.get("group"))
        except ReportInputInvalid as exc:
            raise ParseError(str(exc), code="invalid_report_input") from None
        except GroupNotVisible as exc:
            raise NotFound(str(exc), code="group_not_found") from None

    @extend_schema(
        parameters=[*_SCOPE_PARAMS, *_RULE_PARAMS],
        responses={200: OpenApiTypes.OBJECT, 400: ErrorSerializer, 404: ErrorSerializer},
    )
    def list(self, request: Request) -> Response:
        scope = self._scope(request)
        p = request.query_params
        try:
            rule = rule_from(materiality=p.get("materiality"), alpha=p.get("alpha"), min_n=p.get("min_n"))
        except ValueError as exc:
            raise ParseError(str(exc), code="invalid_report_input") from None
        response = Response(parity_report(scope=scope, rule=rule))
        if request.accepted_renderer.format == "csv":
            response["Content-Disposition"] = 'attachment; filename="parity.csv"'
        return response

    @extend_schema(
        parameters=[
            *_SCOPE_PARAMS,
            OpenApiParameter("channel", OpenApiTypes.STR, description="a channel kind (email, twitter, …) or all"),
            OpenApiParameter("metric", OpenApiTypes.STR, enum=[*DRILLDOWN_METRICS], description="the figure"),
            OpenApiParameter("slower_than", OpenApiTypes.FLOAT, description="seconds; first_response(_business), resolution"),
        ],
        responses={200: DrillTicketPageSerializer, 400: ErrorSerializer, 404: ErrorSerializer},
    )
    @action(detail=False, url_path="tickets")
    def tickets(self, request: Request) -> Response:
        scope = self._scope(request)
        p = request.query_params
        try:
            slower = float(p["slower_than"]) if p.get("slower_than") else None
            qs = report_tickets(scope=scope, metric=p.get("metric", "volume"), channel=p.get("channel"), slower_than=slower)
        except (ReportInputInvalid, ValueError) as exc:
            raise ParseError(str(exc), code="invalid_report_input") from None
        qs = qs.select_related("origin_account")
        paginator = Pagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(DrillTicketSerializer(page, many=True).data)
