"""Shapes of tickets, messages, audit events and customers in the API. No business logic here."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from omnidesk.customers.models import Customer, Identity
from omnidesk.routing.models import Group
from omnidesk.sla.services import sla_remaining
from omnidesk.tickets.models import Attachment, Message, Ticket, TicketEvent
from omnidesk.tickets.selectors import ticket_events, ticket_messages


class ErrorSerializer(serializers.Serializer):
    """Every error: a stable code and a sentence for a person."""

    error = serializers.CharField(help_text="stable machine-readable code, e.g. reply_too_long")
    detail = serializers.CharField(help_text="what went wrong, for a person")
    fields = serializers.DictField(required=False, help_text="per-field problems, for invalid input")


# --- small nested shapes ------------------------------------------------------------------


class UserRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField(source="get_username")


class GroupRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Group
        fields = ["id", "name"]


class IdentityRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Identity
        fields = ["id", "kind", "namespace", "value", "display_name"]


class ChannelRefSerializer(serializers.Serializer):
    kind = serializers.CharField()
    account = serializers.CharField(source="slug", help_text="the channel account's slug")


class ReachSerializer(serializers.Serializer):
    followers = serializers.IntegerField(source="reach_followers", allow_null=True)
    verified = serializers.BooleanField(source="reach_verified", allow_null=True)


class AttachmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attachment
        fields = ["id", "filename", "content_type", "size"]


class DeliverySerializer(serializers.Serializer):
    """The outbox row behind an outbound reply."""

    status = serializers.CharField()
    attempts = serializers.IntegerField()
    last_error = serializers.CharField()
    error_code = serializers.CharField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    sent_at = serializers.DateTimeField(allow_null=True)


# --- messages and events --------------------------------------------------------------------


#: Serializers kept whole and reused: DRF builds a serializer's fields (a ModelSerializer's from the
#: model) on first use per instance, which was half the CPU of a PATCH answer (bench/load.py)
_CHANNEL_REF = ChannelRefSerializer()
_DELIVERY = DeliverySerializer()


class MessageSerializer(serializers.ModelSerializer):
    # a plain string in the schema: an enum named "kind" would collide with the identity kinds
    kind = serializers.CharField(read_only=True, help_text="message, note (internal) or call")
    channel = serializers.SerializerMethodField(help_text="null for internal notes")
    author_identity = IdentityRefSerializer(allow_null=True, help_text="the customer's identity (inbound)")
    author_agent = UserRefSerializer(source="author_user", allow_null=True, help_text="the agent (replies, notes)")
    reach = ReachSerializer(source="*", help_text="the author's reach when the message was sent")
    attachments = AttachmentSerializer(many=True)
    delivery = serializers.SerializerMethodField(help_text="outbox status of a reply; null otherwise")

    class Meta:
        model = Message
        fields = [
            "id", "ticket", "direction", "kind", "visibility", "channel", "external_id", "author_identity",
            "author_agent", "subject", "text", "html", "sent_at", "received_at", "automated", "reach", "call",
            "state", "state_reason", "attachments", "delivery",
        ]
        extra_kwargs = {"html": {"help_text": "already sanitized; safe to render"}}

    @extend_schema_field(ChannelRefSerializer(allow_null=True))
    def get_channel(self, obj: Message) -> dict[str, Any] | None:
        return _CHANNEL_REF.to_representation(obj.account) if obj.account_id else None

    @extend_schema_field(DeliverySerializer(allow_null=True))
    def get_delivery(self, obj: Message) -> dict[str, Any] | None:
        outbound = getattr(obj, "outbound", None)
        return _DELIVERY.to_representation(outbound) if outbound is not None else None


class TicketEventSerializer(serializers.ModelSerializer):
    actor_user = UserRefSerializer(allow_null=True)
    old = serializers.JSONField(allow_null=True)
    new = serializers.JSONField(allow_null=True)

    class Meta:
        model = TicketEvent
        fields = ["id", "at", "actor", "actor_user", "action", "field", "old", "new", "message", "note"]


# --- tickets ------------------------------------------------------------------------------


class CustomerRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = ["id", "display_name"]


class SlaDeadlineSerializer(serializers.Serializer):
    due_at = serializers.DateTimeField()
    seconds_left = serializers.IntegerField(help_text="negative when overdue")
    breached = serializers.BooleanField()


class SlaSerializer(serializers.Serializer):
    policy = serializers.CharField(allow_null=True, help_text="the SLA policy that applies; null = none")
    reason = serializers.CharField(help_text="why that policy applies")
    deadlines = serializers.DictField(
        child=SlaDeadlineSerializer(), help_text="first_response, next_response, resolution: those running now"
    )


#: shared by every ticket: a SlaSerializer built per ticket rebuilt its fields each time (~10 % of a claim's CPU)
_SLA = SlaSerializer()


class TicketSerializer(serializers.ModelSerializer):
    channel = ChannelRefSerializer(source="origin_account", help_text="where the ticket started")
    customer = CustomerRefSerializer()
    assignee = UserRefSerializer(allow_null=True)
    group = GroupRefSerializer(allow_null=True)
    tags = serializers.ListField(child=serializers.CharField())
    sla = serializers.SerializerMethodField()

    class Meta:
        model = Ticket
        fields = [
            "id", "subject", "status", "priority", "channel", "customer", "assignee", "group", "tags",
            "created_at", "updated_at", "customer_first_message_at", "last_customer_message_at",
            "first_response_at", "solved_at", "closed_at", "reopen_count", "handoff_at", "sla",
        ]

    @extend_schema_field(SlaSerializer)
    def get_sla(self, obj: Ticket) -> dict[str, Any]:
        policy = obj.sla_policy.name if obj.sla_policy_id else None
        return _SLA.to_representation({"policy": policy, "reason": obj.sla_reason, "deadlines": sla_remaining(obj)})


class TicketDetailSerializer(TicketSerializer):
    messages = serializers.SerializerMethodField(help_text="oldest first")
    events = serializers.SerializerMethodField(help_text="the audit trail, oldest first")

    class Meta(TicketSerializer.Meta):
        fields = [*TicketSerializer.Meta.fields, "messages", "events"]

    @extend_schema_field(MessageSerializer(many=True))
    def get_messages(self, obj: Ticket) -> list[dict[str, Any]]:
        return _MESSAGES.to_representation(ticket_messages(ticket=obj))

    @extend_schema_field(TicketEventSerializer(many=True))
    def get_events(self, obj: Ticket) -> list[dict[str, Any]]:
        return _EVENTS.to_representation(ticket_events(ticket=obj))


_MESSAGES = MessageSerializer(many=True)
_EVENTS = TicketEventSerializer(many=True)


def _agents() -> Any:
    return get_user_model().objects.filter(is_active=True).filter(Q(agent__isnull=False) | Q(is_superuser=True))


class TicketUpdateSerializer(serializers.Serializer):
    """PATCH body: any of these; everything else is refused rather than silently ignored."""

    status = serializers.ChoiceField(choices=Ticket.Status.choices, required=False)
    priority = serializers.ChoiceField(choices=Ticket.Priority.choices, required=False)
    group = serializers.PrimaryKeyRelatedField(
        queryset=Group.objects.all(), allow_null=True, required=False,
        error_messages={"does_not_exist": "there is no group {pk_value}"},
    )
    assignee = serializers.PrimaryKeyRelatedField(
        queryset=_agents(), allow_null=True, required=False,
        help_text="a user id of an agent; null unassigns",
        error_messages={"does_not_exist": "user {pk_value} is not an active agent"},
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        allowed = set(self.fields)
        unknown = sorted(set(self.initial_data) - allowed) if isinstance(self.initial_data, dict) else []
        if unknown:
            raise serializers.ValidationError(
                f"cannot change {', '.join(unknown)}; a ticket's {', '.join(sorted(allowed))} can be changed"
            )
        if not attrs:
            raise serializers.ValidationError(f"nothing to change; send any of {', '.join(sorted(allowed))}")
        return attrs


class ReplySerializer(serializers.Serializer):
    text = serializers.CharField(trim_whitespace=False, help_text="the reply as plain text")
    visibility = serializers.ChoiceField(
        choices=[("public", "public"), ("private", "private")], required=False,
        help_text="default: the visibility of the customer's message being answered",
    )
    identity = serializers.IntegerField(
        required=False, help_text="id of the customer identity to answer; default: the author of their last message"
    )
    html = serializers.CharField(required=False, default="", allow_blank=True, help_text="sanitized before storing")
    allow_public_pii = serializers.BooleanField(
        required=False, default=False,
        help_text="send a PUBLIC reply even though it contains an e-mail address, phone, card or account number",
    )
    seen_up_to = serializers.IntegerField(
        required=False, allow_null=True, default=None,
        help_text="id of the newest message you saw; another agent's reply after it is a conflict (409 reply_conflict)",
    )
    confirm_conflict = serializers.BooleanField(
        required=False, default=False, help_text="send even though another agent replied after seen_up_to"
    )

    def validate_text(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("a reply needs some text")
        return value


class ReplyUploadSerializer(ReplySerializer):
    """The same reply sent as multipart/form-data, with files."""

    attachments = serializers.ListField(
        child=serializers.FileField(allow_empty_file=False), required=False, default=list,
        help_text="files to send with the reply (only on channels that can send attachments)",
    )


class HandoffSerializer(serializers.Serializer):
    private_text = serializers.CharField(help_text="the first private message (the DM / Messenger reply)")
    public_text = serializers.CharField(
        required=False, default="", allow_blank=True,
        help_text="the public acknowledgement; default: the account's handoff template",
    )


class HandoffResultSerializer(serializers.Serializer):
    public = MessageSerializer()
    private = MessageSerializer()


class CallbackSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=[(o, o) for o in ("reached", "voicemail", "no_answer")])
    notes = serializers.CharField(required=False, default="", allow_blank=True)
    duration_s = serializers.IntegerField(required=False, default=0, min_value=0)


class NoteSerializer(serializers.Serializer):
    text = serializers.CharField(help_text="an internal note; never sent to the customer")


# --- customers ----------------------------------------------------------------------------


class IdentitySerializer(serializers.ModelSerializer):
    class Meta:
        model = Identity
        fields = [
            "id", "kind", "namespace", "value", "display_name", "followers", "verified", "reach_seen_at",
            "undeliverable", "undeliverable_reason", "created_at",
        ]


class CustomerSerializer(serializers.ModelSerializer):
    identities = IdentitySerializer(many=True)
    tags = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = Customer
        fields = ["id", "display_name", "tags", "merged_into", "created_at", "identities"]
