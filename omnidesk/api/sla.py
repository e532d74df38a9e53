"""SLA policies and business calendars: agents read, managers change; changes recompute open tickets."""

from __future__ import annotations

from typing import Any

from django.db.models import ProtectedError
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from omnidesk.sla.models import Calendar, Policy
from omnidesk.sla.services import calendar_delete, calendar_save, policy_delete, policy_save
from omnidesk.sla.validation import Invalid

from .permissions import IsDeskStaff, IsManagerOrReadOnly
from .serializers import ErrorSerializer


class CalendarSerializer(serializers.ModelSerializer):
    hours = serializers.JSONField(help_text='{"mon": [["09:00","12:00"],["13:00","17:00"]], ...}; 00:00 as end = midnight')
    closed_dates = serializers.JSONField(required=False, help_text='["2026-12-24", ...]')

    class Meta:
        model = Calendar
        fields = ["id", "name", "timezone", "hours", "holiday_country", "holiday_subdivision", "closed_dates"]


class PolicySerializer(serializers.ModelSerializer):
    conditions = serializers.JSONField(
        required=False,
        help_text='all must hold; absent = any: {"priority": [...], "customer_tags": [...], "groups": [ids], '
        '"visibility": ["public"|"private"], "channels": [kinds]}',
    )
    targets = serializers.JSONField(help_text='minutes per priority: {"normal": {"first_response": 240, ...}}')

    class Meta:
        model = Policy
        fields = ["id", "name", "position", "active", "conditions", "calendar", "targets", "warn_at_percent"]


class _SavedThroughService(viewsets.ModelViewSet):
    permission_classes = [IsDeskStaff, IsManagerOrReadOnly]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    save: Any = None
    remove: Any = None

    def _write(self, request: Request, instance: Any, partial: bool) -> Response:
        body = self.get_serializer(instance, data=request.data, partial=partial)
        body.is_valid(raise_exception=True)
        try:
            saved = type(self).save(**({self.noun: instance} if instance else {}), **body.validated_data)
        except Invalid as exc:
            raise ValidationError({"detail": exc.problems}) from None
        return Response(self.get_serializer(saved).data, status=status.HTTP_200_OK if instance else status.HTTP_201_CREATED)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._write(request, None, partial=False)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._write(request, self.get_object(), partial=True)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            type(self).remove(self.get_object())
        except ProtectedError:
            return Response(
                {"error": "in_use", "detail": f"this {self.noun} is used by a policy; change that policy first"},
                status=status.HTTP_409_CONFLICT,
            )
        return Response(status=status.HTTP_204_NO_CONTENT)


_responses = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


@extend_schema_view(
    create=extend_schema(responses={201: CalendarSerializer, **_responses}),
    partial_update=extend_schema(responses={200: CalendarSerializer, **_responses}),
    destroy=extend_schema(responses={204: None, 409: ErrorSerializer, **_responses}),
)
class CalendarViewSet(_SavedThroughService):
    """Business calendars: time zone, weekly hours (several ranges a day), public holidays, closed dates."""

    queryset = Calendar.objects.order_by("name")
    serializer_class = CalendarSerializer
    noun = "calendar"
    save = staticmethod(calendar_save)
    remove = staticmethod(calendar_delete)


@extend_schema_view(
    create=extend_schema(responses={201: PolicySerializer, **_responses}),
    partial_update=extend_schema(responses={200: PolicySerializer, **_responses}),
    destroy=extend_schema(responses={204: None, 409: ErrorSerializer, **_responses}),
)
class PolicyViewSet(_SavedThroughService):
    """SLA policies, in order: the first active one whose conditions all hold applies to a ticket."""

    queryset = Policy.objects.select_related("calendar").order_by("position", "pk")
    serializer_class = PolicySerializer
    noun = "policy"
    save = staticmethod(policy_save)
    remove = staticmethod(policy_delete)
