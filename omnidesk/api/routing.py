"""Routing: rules (managers change, agents read) with a dry-run, the queue and "next ticket", presence."""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Model
from drf_spectacular.authentication import TokenScheme
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.decorators import action
from rest_framework.exceptions import AuthenticationFailed, NotFound, ValidationError
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from omnidesk import rows
from omnidesk.routing import rules_engine as engine
from omnidesk.routing.assignment import PresenceInvalid, presence_set
from omnidesk.routing.models import Agent, Rule
from omnidesk.routing.queue import AtCapacity, queue_claim_next, queue_for_user
from omnidesk.routing.selectors import user_is_manager
from omnidesk.routing.services import RuleInvalid, rule_save, rules_dry_run
from omnidesk.tickets.selectors import ticket_list_for_user

from .permissions import IsDeskStaff
from .serializers import ErrorSerializer, TicketSerializer


class ManagersChangeRules(BasePermission):
    message = "Only managers can change routing rules."

    def has_permission(self, request: Any, view: Any) -> bool:
        return request.method in SAFE_METHODS or user_is_manager(request.user)


class RuleSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.CharField(), help_text=f"any of {', '.join(engine.EVENTS)}")
    conditions = serializers.JSONField(
        required=False, help_text='all must hold: [{"field": "followers", "op": ">=", "value": 10000}, ...]'
    )
    any_conditions = serializers.JSONField(required=False, help_text="when not empty, at least one must hold too")
    actions = serializers.JSONField(help_text='[{"type": "set_priority", "value": "high"}, {"type": "escalate"}]')

    class Meta:
        model = Rule
        fields = [
            "id", "name", "description", "position", "active", "events", "conditions", "any_conditions", "actions",
            "stop_processing", "created_at", "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        extra_kwargs = {"name": {"validators": []}}  # uniqueness is reported with the other problems


class DryRunRequestSerializer(serializers.Serializer):
    ticket = serializers.IntegerField()
    event = serializers.ChoiceField(
        choices=engine.EVENTS, required=False,
        help_text="default: ticket_created when the ticket has one customer message, else customer_message",
    )


class ConditionResultSerializer(serializers.Serializer):
    field = serializers.CharField()
    op = serializers.CharField()
    value = serializers.JSONField()
    actual = serializers.JSONField(help_text="the ticket's value for the field")
    held = serializers.BooleanField()


class RuleResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    fired = serializers.BooleanField(help_text="would this rule fire")
    skipped = serializers.BooleanField(help_text="not evaluated: an earlier rule stops processing")
    stop_processing = serializers.BooleanField()
    conditions = ConditionResultSerializer(many=True)
    any_conditions = ConditionResultSerializer(many=True)
    actions = serializers.ListField(child=serializers.JSONField(), help_text="what it would do")


class DryRunSerializer(serializers.Serializer):
    ticket = serializers.IntegerField()
    event = serializers.CharField()
    facts = serializers.DictField(child=serializers.JSONField(), help_text="what the rules see")
    rules = RuleResultSerializer(many=True, help_text="active rules for the event, in order")


_errors = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


@extend_schema_view(
    create=extend_schema(responses={201: RuleSerializer, **_errors}),
    partial_update=extend_schema(responses={200: RuleSerializer, **_errors}),
    destroy=extend_schema(responses={204: None, **_errors}),
)
class RuleViewSet(viewsets.ModelViewSet):
    """Routing rules in order (position): the same for every channel. Agents read; managers change."""

    permission_classes = [IsDeskStaff, ManagersChangeRules]
    serializer_class = RuleSerializer
    queryset = Rule.objects.order_by("position", "pk")
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def _write(self, request: Request, instance: Rule | None) -> Response:
        body = self.get_serializer(instance, data=request.data, partial=instance is not None)
        body.is_valid(raise_exception=True)
        try:
            saved = rule_save(rule=instance, **body.validated_data)
        except RuleInvalid as exc:
            raise ValidationError({"detail": exc.problems}) from None
        return Response(self.get_serializer(saved).data, status=status.HTTP_200_OK if instance else status.HTTP_201_CREATED)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._write(request, None)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._write(request, self.get_object())

    @extend_schema(
        request=DryRunRequestSerializer, responses={200: DryRunSerializer, **_errors},
        description="Which rules would fire on a ticket, each condition with its actual value, and the actions; "
        "changes nothing.",
    )
    @action(detail=False, methods=["post"], url_path="dry-run", permission_classes=[IsDeskStaff])
    def dry_run(self, request: Request) -> Response:
        body = DryRunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        ticket = ticket_list_for_user(user=request.user).filter(pk=body.validated_data["ticket"]).first()
        if ticket is None:
            raise NotFound(f"no ticket {body.validated_data['ticket']} that you can see")
        result = rules_dry_run(ticket=ticket, event=body.validated_data.get("event"))
        data = {
            "ticket": result.ticket, "event": result.event, "facts": result.facts,
            "rules": [
                {**vars(r), "conditions": [vars(c) for c in r.conditions], "any_conditions": [vars(c) for c in r.any_conditions]}
                for r in result.rules
            ],
        }
        return Response(DryRunSerializer(data).data)


class TokenWithAgentProfile(TokenAuthentication):
    """Token authentication that reads the user's agent profile in the same query: "next ticket"
    is the hottest endpoint, and the permission and the claim both need the profile. The query is
    one prepared statement: compiling its ORM equivalent cost more CPU than the claim itself."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        with rows.prepared_cursor() as cursor:
            cursor.execute(_token_sql(), [key])
            row = cursor.fetchone()
        if row is None:
            raise AuthenticationFailed("Invalid token.")
        token, user, agent = rows.instances(row, _token_row_models())
        if not user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        profile = Agent._meta.get_field("user")
        Token._meta.get_field("user").set_cached_value(token, user)
        profile.remote_field.set_cached_value(user, agent)  # None: `user.agent` raises, as with select_related
        if agent is not None:
            profile.set_cached_value(agent, user)
        return user, token


def _token_row_models() -> list[type[Model]]:
    """The models whose columns _token_sql returns, in order."""
    return [Token, get_user_model(), Agent]


@functools.cache
def _token_sql() -> str:
    """The token, its user and the user's agent profile (NULLs when none), by key."""
    user = get_user_model()._meta
    owner, profile = Token._meta.get_field("user").column, Agent._meta.get_field("user").column
    return (
        f"SELECT {', '.join(rows.columns(model, alias) for model, alias in zip(_token_row_models(), 'tua'))}"
        f' FROM "{Token._meta.db_table}" t JOIN "{user.db_table}" u ON u."{user.pk.column}" = t."{owner}"'
        f' LEFT JOIN "{Agent._meta.db_table}" a ON a."{profile}" = u."{user.pk.column}" WHERE t."key" = %s'
    )


class TokenWithAgentProfileScheme(TokenScheme):
    """The same "Token <key>" header in the schema; its own name, as drf-spectacular names one class per scheme."""

    target_class = "omnidesk.api.routing.TokenWithAgentProfile"
    name = "tokenAuthAgent"
    priority = 0


@functools.cache
def _claimed_ticket_serializer() -> TicketSerializer:
    """One serializer per process for claimed tickets: DRF builds a serializer's fields anew for
    every instance, which was most of a claim's CPU. It reads no request context, so it is shared."""
    return TicketSerializer(context={})


class QueueViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The single queue: what you may take, most urgent first (earliest SLA deadline, priority, age)."""

    authentication_classes = [
        TokenWithAgentProfile if cls is TokenAuthentication else cls for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES
    ]
    permission_classes = [IsDeskStaff]
    serializer_class = TicketSerializer

    def get_queryset(self) -> Any:
        return queue_for_user(user=self.request.user)

    @extend_schema(
        request=None,
        responses={
            200: TicketSerializer,
            204: OpenApiResponse(description="nothing you may take right now"),
            409: OpenApiResponse(ErrorSerializer, description="you are at your capacity of open tickets"),
        },
        description="Atomically claim the most urgent unassigned ticket you may take (your groups, skills, capacity).",
    )
    @action(detail=False, methods=["post"])
    def next(self, request: Request) -> Response:
        try:
            ticket = queue_claim_next(user=request.user)
        except AtCapacity as exc:
            return Response({"error": "at_capacity", "detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        if ticket is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(_claimed_ticket_serializer().to_representation(ticket))


@extend_schema_serializer(many=False)  # GET answers your own presence, one object, unpaginated
class PresenceSerializer(serializers.Serializer):
    presence = serializers.ChoiceField(choices=Agent.Presence.values)


class PresenceViewSet(viewsets.GenericViewSet):
    """Your presence: online agents get tickets from round-robin and least-loaded groups."""

    permission_classes = [IsDeskStaff]
    serializer_class = PresenceSerializer

    @extend_schema(responses={200: PresenceSerializer, 400: ErrorSerializer})
    def list(self, request: Request) -> Response:
        agent = Agent.objects.filter(user=request.user).first()
        if agent is None:
            raise ValidationError({"detail": "your account has no agent profile, so it has no presence"})
        return Response({"presence": agent.presence})

    @extend_schema(request=PresenceSerializer, responses={200: PresenceSerializer, 400: ErrorSerializer})
    def create(self, request: Request) -> Response:
        body = PresenceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            agent = presence_set(user=request.user, presence=body.validated_data["presence"])
        except PresenceInvalid as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response({"presence": agent.presence})
