"""Tickets, customers and health. Thin: scope with a selector, call one service, serialize."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from omnidesk.customers.models import Identity
from omnidesk.customers.selectors import customer_list_for_user
from omnidesk.routing.selectors import user_group_ids, user_is_manager
from omnidesk.tickets.models import Ticket
from omnidesk.tickets.replies import (
    callback_log,
    note_create,
    reply_create,
    ticket_handoff,
)
from omnidesk.tickets.selectors import (
    SHOWN_WITH_TICKET,
    ticket_for_user,
    ticket_list_for_user,
)
from omnidesk.tickets.services import ticket_update

from .filters import CUSTOMER_FILTERS, TICKET_FILTERS, customer_filter, ticket_filter
from .health import health_run
from .permissions import IsDeskStaff
from .serializers import (
    CallbackSerializer,
    CustomerSerializer,
    ErrorSerializer,
    HandoffResultSerializer,
    HandoffSerializer,
    MessageSerializer,
    NoteSerializer,
    ReplySerializer,
    ReplyUploadSerializer,
    TicketDetailSerializer,
    TicketSerializer,
    TicketUpdateSerializer,
)
from .views_common import ScopedObjectMixin

_NOT_FOUND = OpenApiResponse(ErrorSerializer, description="no such ticket among those you can see")


class UploadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "upload_too_large"


def _refuse_large_upload(request: Request) -> None:
    """413 before the body is parsed when it says it is too big, and after, on the files' real sizes."""
    limit = settings.OMNIDESK["REPLY_UPLOAD_MAX_BYTES"]
    message = f"the attachments of one reply may total at most {limit} bytes"
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise UploadTooLarge(message)
    if sum(f.size or 0 for f in request.FILES.getlist("attachments")) > limit:
        raise UploadTooLarge(message)


def _refuse_assignee_who_cannot_see(user: Any, ticket: Any, changes: dict[str, Any]) -> None:
    """Agents assign only someone who will see the ticket: a manager, or an agent of its (new) group."""
    assignee = changes.get("assignee")
    if assignee is None or user_is_manager(user) or user_is_manager(assignee):
        return
    group = changes["group"] if "group" in changes else ticket.group
    if group is None or group.pk not in user_group_ids(assignee):
        raise ValidationError({"assignee": f"{assignee.get_username()} is not in the ticket's group, so could not see it"})


#: built once: a serializer builds its (and its nested serializers') fields on first use (serializers.py)
_TICKET_DETAIL = TicketDetailSerializer()
_MESSAGE = MessageSerializer()

def _with_relations_of(read: Ticket, updated: Ticket) -> Ticket:
    """`updated` (a service's fresh copy of `read`) given the related rows `read` already holds and still
    points at: one lazy query per relation was most of a PATCH's queries (bench/load.py solves tickets)."""
    for name in SHOWN_WITH_TICKET:
        field = Ticket._meta.get_field(name)
        if (field.is_cached(read) and not field.is_cached(updated)  # type: ignore[union-attr]
                and getattr(read, field.attname) == getattr(updated, field.attname)):  # type: ignore[union-attr]
            field.set_cached_value(updated, field.get_cached_value(read))  # type: ignore[union-attr]
    return updated


@extend_schema_view(
    list=extend_schema(parameters=TICKET_FILTERS, responses={200: TicketSerializer(many=True), 400: ErrorSerializer}),
    retrieve=extend_schema(responses={200: TicketDetailSerializer, 404: _NOT_FOUND}),
    partial_update=extend_schema(
        request=TicketUpdateSerializer,
        responses={200: TicketDetailSerializer, 400: ErrorSerializer, 404: _NOT_FOUND},
        description="Change status, priority, group or assignee; each change is recorded in the audit trail.",
    ),
)
class TicketViewSet(ScopedObjectMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Tickets of the groups you belong to (managers: all), newest activity first."""

    permission_classes = [IsDeskStaff]
    serializer_class = TicketSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]
    noun = "ticket"

    def get_queryset(self) -> Any:
        qs = ticket_list_for_user(user=self.request.user).select_related("sla_policy")
        if self.action == "list":
            return ticket_filter(qs, params=self.request.query_params, user=self.request.user)
        return qs  # detail requests read their ticket with get_object

    def get_object(self) -> Ticket:
        """The ticket of a detail request with what its answer shows, read by ticket_for_user's one prepared
        statement: compiling the ORM's scoped read cost more CPU than running it, on every ticket request."""
        ticket = ticket_for_user(user=self.request.user, pk=self.kwargs["pk"])
        if ticket is None:
            raise self.not_found()
        self.check_object_permissions(self.request, ticket)
        return ticket

    def get_serializer_class(self) -> Any:
        return TicketDetailSerializer if self.action in ("retrieve", "partial_update") else TicketSerializer

    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        """The shared serializer: get_serializer() built a detail serializer's fields anew per request."""
        return Response(_TICKET_DETAIL.to_representation(self.get_object()))

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        body = TicketUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        _refuse_assignee_who_cannot_see(request.user, ticket, body.validated_data)
        updated = _with_relations_of(ticket, ticket_update(ticket=ticket, user=request.user, **body.validated_data))
        return Response(_TICKET_DETAIL.to_representation(updated))

    @extend_schema(
        request={
            "application/json": ReplySerializer,
            "multipart/form-data": ReplyUploadSerializer,
            "application/x-www-form-urlencoded": ReplySerializer,
        },
        responses={
            202: MessageSerializer, 400: ErrorSerializer, 404: _NOT_FOUND, 409: ErrorSerializer, 413: ErrorSerializer,
        },
        description=(
            "Queue a reply on the channel and identity of the customer's last message (or the identity "
            "given). 202: the reply is in the outbox; its `delivery` tells how sending goes. 400 when the "
            "channel cannot take it (too long, no such capability, reply window closed). 409 `public_pii`: "
            "a public reply containing personal data (resend privately, or with allow_public_pii); 409 "
            "`reply_conflict`: another agent replied after `seen_up_to` (resend with confirm_conflict). Files go "
            "as multipart/form-data, one `attachments` part each; 413 `upload_too_large` when they are too big."
        ),
    )
    @action(detail=True, methods=["post"])
    def replies(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        _refuse_large_upload(request)
        body = ReplyUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        files = [(f.name, f.content_type or "", f.read()) for f in data["attachments"]]
        identity = None
        if "identity" in data:
            identity = Identity.objects.filter(pk=data["identity"], customer_id=ticket.customer_id).first()
            if identity is None:
                raise ValidationError({"identity": f"the ticket's customer has no identity {data['identity']}"})
        message = reply_create(
            ticket=ticket, user=request.user, text=data["text"], visibility=data.get("visibility"),
            identity=identity, html=data.get("html", ""), allow_public_pii=data["allow_public_pii"],
            seen_up_to=data["seen_up_to"], confirm_conflict=data["confirm_conflict"], attachments=files,
        )  # ReplyRefused and plugin errors → 400, public_pii / reply_conflict → 409, through api/errors.py
        return Response(_MESSAGE.to_representation(message), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=HandoffSerializer,
        responses={202: HandoffResultSerializer, 400: ErrorSerializer, 404: _NOT_FOUND},
        description=(
            "Move a public conversation to a private one on the same ticket: a short public "
            "acknowledgement, then a private message to the same person (tweet → DM, comment → Messenger)."
        ),
    )
    @action(detail=True, methods=["post"])
    def handoff(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        body = HandoffSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        public, private = ticket_handoff(
            ticket=ticket, user=request.user, private_text=body.validated_data["private_text"],
            public_text=body.validated_data["public_text"],
        )
        data = {"public": MessageSerializer(public).data, "private": MessageSerializer(private).data}
        return Response(data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=CallbackSerializer,
        responses={201: MessageSerializer, 400: ErrorSerializer, 404: _NOT_FOUND},
        description="Log a call-back on a channel that cannot send (phone); reached or voicemail is a response.",
    )
    @action(detail=True, methods=["post"])
    def callbacks(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        body = CallbackSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        message = callback_log(ticket=ticket, user=request.user, **body.validated_data)
        return Response(_MESSAGE.to_representation(message), status=status.HTTP_201_CREATED)

    @extend_schema(request=NoteSerializer, responses={201: MessageSerializer, 400: ErrorSerializer, 404: _NOT_FOUND})
    @action(detail=True, methods=["post"])
    def notes(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        body = NoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        message = note_create(ticket=ticket, user=request.user, text=body.validated_data["text"])
        return Response(_MESSAGE.to_representation(message), status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(parameters=CUSTOMER_FILTERS, responses={200: CustomerSerializer(many=True), 400: ErrorSerializer}),
    retrieve=extend_schema(responses={200: CustomerSerializer, 404: ErrorSerializer}),
)
class CustomerViewSet(ScopedObjectMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Customers with their channel identities: yours are those with a ticket in one of your groups."""

    permission_classes = [IsDeskStaff]
    serializer_class = CustomerSerializer
    noun = "customer"

    def get_queryset(self) -> Any:
        qs = customer_list_for_user(user=self.request.user)
        if self.action == "list":
            return customer_filter(qs, params=self.request.query_params)
        return qs.order_by("-pk")


class CheckSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    detail = serializers.CharField()


@extend_schema_serializer(many=False)  # the list action answers one object
class HealthSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="ok or failing")
    checks = serializers.DictField(child=CheckSerializer(), help_text="database, broker, channel_layer")
    error = serializers.CharField(required=False, help_text="'unhealthy' when status is failing")
    detail = serializers.CharField(required=False, help_text="the failing components and why")


class HealthViewSet(viewsets.ViewSet):
    """Is this desk able to work? No login needed; answers within a few seconds."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: HealthSerializer, 503: HealthSerializer}, auth=[])
    def list(self, request: Request) -> Response:
        results = health_run()
        body: dict[str, Any] = {
            "status": "ok" if all(c.ok for c in results.values()) else "failing",
            "checks": {name: {"ok": c.ok, "detail": c.detail} for name, c in results.items()},
        }
        if body["status"] == "ok":
            return Response(body)
        failing = [f"{name}: {c.detail}" for name, c in results.items() if not c.ok]
        body.update(error="unhealthy", detail="; ".join(failing))
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "10"})
