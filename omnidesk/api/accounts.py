"""Installed channel plugins and connected channel accounts.

Secrets are write-only: accepted in `secrets`, stored encrypted by the service, and only their
NAMES ever come back (`secrets_set`).
"""

from __future__ import annotations

from typing import Any

from django.db.models import ProtectedError
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_serializer, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from omnidesk.plugins.config import describe
from omnidesk.plugins.contract import ChannelPlugin
from omnidesk.plugins.crypto import decrypt_secrets
from omnidesk.plugins.errors import PluginError
from omnidesk.plugins.models import ChannelAccount
from omnidesk.plugins.registry import UnknownPlugin, registry
from omnidesk.plugins.services import account_plugin, channel_account_save

from .permissions import IsDeskStaff, IsManagerOrReadOnly
from .serializers import ErrorSerializer
from .views_common import ScopedObjectMixin

# --- installed plugins --------------------------------------------------------------------


class CapabilitiesSerializer(serializers.Serializer):
    features = serializers.ListField(child=serializers.CharField(), help_text="e.g. public_reply, push")
    can_send = serializers.BooleanField()
    max_length = serializers.IntegerField(allow_null=True)
    length_unit = serializers.CharField()
    reply_window_s = serializers.IntegerField(allow_null=True, help_text="seconds after the customer's last message")
    extended_reply_window_s = serializers.IntegerField(allow_null=True)
    max_attachment_bytes = serializers.IntegerField(allow_null=True)


class ConfigFieldSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField()
    required = serializers.BooleanField()
    secret = serializers.BooleanField(help_text="write it in `secrets`; it is never returned")
    default = serializers.JSONField(allow_null=True)
    help = serializers.CharField()


class PluginSerializer(serializers.Serializer):
    kind = serializers.CharField()
    label = serializers.CharField()
    capabilities = CapabilitiesSerializer()
    config_schema = ConfigFieldSerializer(many=True)
    event_types = serializers.DictField(child=serializers.CharField(), help_text="event type → what becomes of it")


@extend_schema_serializer(many=False)  # the list action answers one object: {"channels": [...], ...}
class ChannelListSerializer(serializers.Serializer):
    channels = PluginSerializer(many=True)
    load_errors = serializers.DictField(child=serializers.CharField(), help_text="entry point → why it did not load")


def _seconds(delta: Any) -> int | None:
    return None if delta is None else int(delta.total_seconds())


def plugin_describe(cls: type[ChannelPlugin]) -> dict[str, Any]:
    caps = cls.capabilities
    return {
        "kind": cls.kind,
        "label": cls.label,
        "capabilities": {
            "features": sorted(f.value for f in caps.features),
            "can_send": caps.can_send,
            "max_length": caps.max_length,
            "length_unit": caps.length_unit,
            "reply_window_s": _seconds(caps.reply_window),
            "extended_reply_window_s": _seconds(caps.extended_reply_window),
            "max_attachment_bytes": caps.max_attachment_bytes,
        },
        "config_schema": describe(cls.config_schema),
        "event_types": dict(cls.event_types),
    }


class ChannelViewSet(viewsets.ViewSet):
    """The channel plugins installed on this desk (entry points `omnidesk.channels`)."""

    permission_classes = [IsDeskStaff]

    @extend_schema(responses={200: ChannelListSerializer, 403: ErrorSerializer})
    def list(self, request: Request) -> Response:
        found = registry()
        data = {"channels": [plugin_describe(cls) for cls in found.plugins.values()], "load_errors": found.errors}
        return Response(ChannelListSerializer(data).data)


# --- channel accounts ---------------------------------------------------------------------


class AccountHealthSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChannelAccount
        fields = ["last_success_at", "last_error", "last_error_at", "needs_reauthorization"]


class ChannelAccountSerializer(serializers.ModelSerializer):
    secrets = serializers.DictField(
        child=serializers.CharField(trim_whitespace=False), write_only=True, required=False,
        help_text="write-only: {name: value} for the plugin's secret settings; omitted names keep their stored value",
    )
    secrets_set = serializers.SerializerMethodField(help_text="names of the secrets stored (never their values)")
    webhook_path = serializers.SerializerMethodField(help_text="where the channel posts webhooks")
    health = AccountHealthSerializer(source="*", read_only=True)
    problem = serializers.SerializerMethodField(help_text="why this account cannot work as configured; null if fine")

    class Meta:
        model = ChannelAccount
        fields = [
            "id", "kind", "slug", "name", "enabled", "config", "secrets", "secrets_set", "default_group",
            "default_region", "webhook_path", "health", "problem", "created_at", "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"kind": {"help_text": "an installed plugin's kind (see /api/v1/channels/); fixed once created"}}

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_secrets_set(self, obj: ChannelAccount) -> list[str]:
        try:
            return sorted(decrypt_secrets(obj.secrets_encrypted))
        except ValueError:
            return []

    def get_webhook_path(self, obj: ChannelAccount) -> str:
        return f"/hooks/{obj.slug}/"

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_problem(self, obj: ChannelAccount) -> str | None:
        try:
            account_plugin(obj)
        except (PluginError, UnknownPlugin, ValueError) as exc:
            return str(exc)
        return None

    def validate_kind(self, value: str) -> str:
        if self.instance is not None and value != self.instance.kind:
            raise ValidationError("the kind of an account cannot change; create a new account instead")
        if self.instance is None and value not in registry().plugins:
            installed = ", ".join(registry().plugins) or "none"
            raise ValidationError(f"no channel plugin {value!r} is installed (installed: {installed})")
        return value

    def validate_config(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise ValidationError("must be a JSON object of settings")
        return value

    def validate_default_region(self, value: str) -> str:
        if value and not (len(value) == 2 and value.isalpha()):
            raise ValidationError("must be a two-letter ISO country code, such as 'GB'")
        return value.upper()


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


@extend_schema_view(
    list=extend_schema(responses={200: ChannelAccountSerializer(many=True), 403: ErrorSerializer}),
    retrieve=extend_schema(responses={200: ChannelAccountSerializer, 404: ErrorSerializer}),
    create=extend_schema(responses={201: ChannelAccountSerializer, 400: ErrorSerializer, 403: ErrorSerializer}),
    partial_update=extend_schema(responses={200: ChannelAccountSerializer, 400: ErrorSerializer, 404: ErrorSerializer}),
    update=extend_schema(responses={200: ChannelAccountSerializer, 400: ErrorSerializer, 404: ErrorSerializer}),
    destroy=extend_schema(responses={204: None, 404: ErrorSerializer, 409: ErrorSerializer}),
)
class ChannelAccountViewSet(
    ScopedObjectMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Connected channel accounts, looked up by slug (the part of the webhook URL /hooks/<slug>/).

    Agents read; managers create, change and delete. Writes are validated by the plugin's schema.
    """

    queryset = ChannelAccount.objects.order_by("slug")
    serializer_class = ChannelAccountSerializer
    permission_classes = [IsDeskStaff, IsManagerOrReadOnly]
    lookup_field = "slug"
    lookup_value_regex = r"[-a-zA-Z0-9_]+"
    noun = "channel account"

    def perform_create(self, serializer: ChannelAccountSerializer) -> None:  # type: ignore[override]
        serializer.instance = self._save(serializer.validated_data, None)

    def perform_update(self, serializer: ChannelAccountSerializer) -> None:  # type: ignore[override]
        serializer.instance = self._save(serializer.validated_data, serializer.instance)

    def _save(self, data: dict[str, Any], account: ChannelAccount | None) -> ChannelAccount:
        def pick(name: str, default: Any) -> Any:
            return data[name] if name in data else (getattr(account, name) if account is not None else default)

        group = pick("default_group", None)
        return channel_account_save(
            kind=pick("kind", ""),
            slug=pick("slug", ""),
            name=pick("name", ""),
            config=pick("config", {}),
            secrets=data.get("secrets"),
            enabled=pick("enabled", True),
            default_group_id=group.pk if group is not None else None,
            default_region=pick("default_region", ""),
            account=account,
        )  # ConfigInvalid → 400 config_invalid through api/errors.py

    def perform_destroy(self, instance: ChannelAccount) -> None:
        try:
            instance.delete()
        except ProtectedError as exc:
            raise Conflict(
                f"channel account {instance.slug!r} has tickets, messages or events and cannot be deleted; "
                "disable it instead (PATCH {\"enabled\": false})"
            ) from exc
