"""Incidents over the API: list and read (scoped), open, confirm, dismiss, resolve, answer together. Thin."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.renderers import TemplateHTMLRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from omnidesk.incidents.bulk import bulk_reply_create, incident_resolve
from omnidesk.incidents.linking import IncidentChangeInvalid, incident_open, incident_status_set, signature_of
from omnidesk.incidents.models import BulkReply, Incident
from omnidesk.incidents.selectors import (
    bulk_reply_summary,
    incident_channel_counts,
    incidents_for_banner,
    incident_links_for_user,
    incident_list_for_user,
)
from omnidesk.reports.incidents import incident_report
from omnidesk.routing.selectors import user_is_manager

from .permissions import IsDeskStaff
from .serializers import ErrorSerializer
from .views_common import ScopedObjectMixin


class IncidentSerializer(serializers.ModelSerializer):
    # plain strings in the schema: "status" and "kind" enums exist elsewhere with other values
    status = serializers.CharField(read_only=True, help_text="suggested | active | resolved | dismissed")
    source = serializers.CharField(read_only=True, help_text="detected | signal | manual")
    counts = serializers.SerializerMethodField(help_text="linked tickets per channel that you may see")

    class Meta:
        model = Incident
        fields = ["id", "title", "status", "source", "signature", "summary", "opened_at", "resolved_at",
                  "window_count", "baseline", "signal_status", "counts"]

    def get_counts(self, obj: Incident) -> list[dict[str, Any]]:
        user = self.context["request"].user
        return [c.__dict__ for c in incident_channel_counts(incident=obj, user=user)]


class IncidentOpenSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    terms = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=40,
                                  help_text="what messages about it say; default: the words of the title")
    summary = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class BulkReplyRequestSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=10_000)
    public_text = serializers.CharField(required=False, allow_blank=True, max_length=10_000,
                                        help_text="the version for length-limited public channels (X); "
                                        "empty: too-long public replies move to a private message")
    kind = serializers.CharField(default=BulkReply.Kind.UPDATE, help_text="update | follow_up")


class ResolveSerializer(serializers.Serializer):
    follow_up = serializers.BooleanField(default=True)
    follow_up_text = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class LinkedTicketSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="ticket_id")
    channel = serializers.CharField()
    status = serializers.CharField(source="ticket.status")
    subject = serializers.CharField(source="ticket.subject")
    first_response_at = serializers.DateTimeField(source="ticket.first_response_at", allow_null=True)
    linked_at = serializers.DateTimeField()


def _manager(request: Request) -> None:
    if not user_is_manager(request.user):
        raise PermissionDenied("Only managers can change incidents or answer them together.")


def _invalid(exc: IncidentChangeInvalid) -> ValidationError:
    return ValidationError({"detail": str(exc)}, code="invalid_change")


class IncidentViewSet(ScopedObjectMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Complaint spikes and status-page incidents. Agents see confirmed incidents and only their groups' tickets."""

    permission_classes = [IsDeskStaff]
    serializer_class = IncidentSerializer
    noun = "incident"

    def get_queryset(self) -> Any:
        return incident_list_for_user(user=self.request.user)

    @extend_schema(request=IncidentOpenSerializer, responses={201: IncidentSerializer, 400: ErrorSerializer, 403: ErrorSerializer})
    def create(self, request: Request) -> Response:
        _manager(request)
        body = IncidentOpenSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        signature = signature_of(*(data.get("terms") or [data["title"]]))  # normalized as messages are
        try:
            incident = incident_open(title=data["title"], signature=signature, source=Incident.Source.MANUAL,
                                     summary=data.get("summary", ""), user=request.user)
        except IncidentChangeInvalid as exc:
            raise _invalid(exc) from None
        return Response(self.get_serializer(incident).data, status=status.HTTP_201_CREATED)

    def _set(self, request: Request, new: str) -> Response:
        incident = self.get_object()  # first: a 404 for what the caller may not see, whoever they are
        _manager(request)
        try:
            incident = incident_status_set(incident=incident, status=new, user=request.user)
        except IncidentChangeInvalid as exc:
            raise _invalid(exc) from None
        return Response(self.get_serializer(incident).data)

    @extend_schema(request=None, responses={200: IncidentSerializer, 400: ErrorSerializer, 403: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def confirm(self, request: Request, pk: str | None = None) -> Response:
        return self._set(request, Incident.Status.ACTIVE)

    @extend_schema(request=None, responses={200: IncidentSerializer, 400: ErrorSerializer, 403: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def dismiss(self, request: Request, pk: str | None = None) -> Response:
        return self._set(request, Incident.Status.DISMISSED)

    @extend_schema(request=ResolveSerializer, responses={200: OpenApiTypes.OBJECT, 400: ErrorSerializer, 403: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str | None = None) -> Response:
        incident = self.get_object()
        _manager(request)
        body = ResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            bulk = incident_resolve(incident=incident, user=request.user, **body.validated_data)
        except IncidentChangeInvalid as exc:
            raise _invalid(exc) from None
        incident = self.get_object()
        return Response({**self.get_serializer(incident).data, "follow_up": bulk.pk if bulk else None})

    @extend_schema(request=BulkReplyRequestSerializer, responses={202: OpenApiTypes.OBJECT, 400: ErrorSerializer, 403: ErrorSerializer})
    @action(detail=True, methods=["post"], url_path="bulk-reply")
    def bulk_reply(self, request: Request, pk: str | None = None) -> Response:
        """One text to every linked ticket, each on its own channel; the same text again sends nothing twice."""
        incident = self.get_object()
        _manager(request)
        body = BulkReplyRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            bulk, created = bulk_reply_create(incident=incident, user=request.user, **body.validated_data)
        except IncidentChangeInvalid as exc:
            raise _invalid(exc) from None
        return Response({"bulk_reply": bulk.pk, "created": created, "status": "queued"}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"], url_path="bulk-replies")
    def bulk_replies(self, request: Request, pk: str | None = None) -> Response:
        """Each bulk reply with its outcomes per channel (queued, handoff, shortened, callback, skipped, failed)."""
        incident = self.get_object()
        return Response([
            {"id": b.pk, "kind": b.kind, "text": b.text, "created_at": b.created_at, "finished_at": b.finished_at,
             "outcomes": bulk_reply_summary(bulk=b, user=request.user)}
            for b in incident.bulk_replies.order_by("pk")
        ])

    @extend_schema(responses={200: LinkedTicketSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def tickets(self, request: Request, pk: str | None = None) -> Response:
        links = incident_links_for_user(incident=self.get_object(), user=request.user)
        page = self.paginate_queryset(links)
        return self.get_paginated_response(LinkedTicketSerializer(page, many=True).data)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def report(self, request: Request, pk: str | None = None) -> Response:
        """How fast each channel's share of the incident was answered (the parity report's incident view)."""
        return Response(incident_report(incident=self.get_object(), user=request.user))

    @extend_schema(responses={(200, "text/html"): OpenApiTypes.STR})
    @action(detail=False, methods=["get"], renderer_classes=[TemplateHTMLRenderer])
    def banner(self, request: Request) -> Response:
        """The pages' incident banner as an HTML fragment (what the queue and manager pages refresh live)."""
        return Response(
            {"items": incidents_for_banner(user=request.user), "is_manager": user_is_manager(request.user)},
            template_name="incidents/_banner.html",
        )
