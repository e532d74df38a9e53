from django.conf import settings
from django.db import models
from django.db.models import Q

from omnidesk.reports.fields import SampleListField


class Ticket(models.Model):
    class Status(models.TextChoices):
        NEW = "new"
        OPEN = "open"
        PENDING = "pending"
        ON_HOLD = "on_hold"
        SOLVED = "solved"
        CLOSED = "closed"

    class Priority(models.TextChoices):
        LOW = "low"
        NORMAL = "normal"
        HIGH = "high"
        URGENT = "urgent"

    subject = models.CharField(max_length=300, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.NEW)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    origin_account = models.ForeignKey("plugins.ChannelAccount", on_delete=models.PROTECT, related_name="tickets")
    #: no index of their own: the (customer, status) and (assignee, status) indexes below lead with them
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="tickets", db_index=False)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_tickets",
        db_index=False,
    )
    group = models.ForeignKey("routing.Group", null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets")
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    #: when the customer first wrote, by the PLATFORM's clock (the SLA clock starts here)
    customer_first_message_at = models.DateTimeField(null=True, blank=True)
    last_customer_message_at = models.DateTimeField(null=True, blank=True)
    first_response_at = models.DateTimeField(null=True, blank=True)
    solved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    reopen_count = models.PositiveIntegerField(default=0)
    #: when the conversation moved from a public channel to a private one (tweet → DM)
    handoff_at = models.DateTimeField(null=True, blank=True)
    # SLA state, maintained by omnidesk.sla.services only
    #: the policy FKs have no index: only deleting a policy looks tickets up by them, and every index here is
    #: written again by each claim's UPDATE (docs/benchmarks.md, bench/claim.py)
    sla_policy = models.ForeignKey(
        "sla.Policy", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    sla_reason = models.CharField(max_length=300, blank=True, default="")
    first_response_due_at = models.DateTimeField(null=True, blank=True)
    next_response_due_at = models.DateTimeField(null=True, blank=True)
    resolution_due_at = models.DateTimeField(null=True, blank=True)
    #: the customer message the next response answers (None = nothing unanswered)
    awaiting_response_since = models.DateTimeField(null=True, blank=True)
    #: resolution clock: business seconds used before the current running period, and its start
    resolution_used_s = models.FloatField(default=0)
    resolution_running_since = models.DateTimeField(null=True, blank=True)
    #: which warnings/breaches were already announced, e.g. ["first_response:warning"]
    sla_announced = models.JSONField(default=list, blank=True)
    #: earliest instant a warning or breach falls due; the sweep's indexed query reads only this
    sla_next_check_at = models.DateTimeField(null=True, blank=True, db_index=True)
    #: the earliest running deadline (queue order: most urgent first)
    sla_due_at = models.DateTimeField(null=True, blank=True)
    #: a policy chosen by a routing rule; wins over the ordered policy match
    sla_policy_override = models.ForeignKey(
        "sla.Policy", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    # outcomes, frozen when they happen (reports read these)
    first_response_business_s = models.FloatField(null=True, blank=True)
    first_response_met = models.BooleanField(null=True, blank=True)
    resolution_met = models.BooleanField(null=True, blank=True)
    # report facts, recomputed from the messages when they change (omnidesk.reports.facts; docs/reports.md)
    #: the customer's first message (sent at customer_first_message_at) was public
    first_message_public = models.BooleanField(default=False)
    #: seconds from each customer message after the first response to the next agent message
    next_response_samples = SampleListField(default=list, blank=True)
    #: received_at - sent_at of each inbound message on the ticket's own channel, seconds
    ingest_lag_samples = SampleListField(default=list, blank=True)
    #: the same for inbound messages that came in on another channel: {channel kind: [seconds]}
    ingest_lag_elsewhere = models.JSONField(default=dict, blank=True)
    #: transfers: audit events moving the ticket from one assignee or group to another (TicketEvent.is_transfer),
    #: counted as they are recorded (omnidesk.tickets.audit) so the parity report needs no join to the audit trail
    transfer_count = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["customer_first_message_at"], name="ticket_report_scope"),
            # the parity report's rare ingest lags of messages on another channel (reports/metrics.py)
            models.Index(
                fields=["customer_first_message_at"], condition=~Q(ingest_lag_elsewhere={}), name="ticket_lag_elsewhere"
            ),
            models.Index(fields=["status", "group"]),
            models.Index(fields=["assignee", "status"]),
            models.Index(fields=["customer", "status"]),
            models.Index(fields=["created_at"], name="ticket_created"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"


class TicketThread(models.Model):
    """A channel conversation key bound to a ticket; unique so two racing workers make one ticket."""

    account = models.ForeignKey("plugins.ChannelAccount", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=512)
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="threads")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "key"], name="thread_unique_key")]


class Message(models.Model):
    class Direction(models.TextChoices):
        INBOUND = "in"
        OUTBOUND = "out"

    class Kind(models.TextChoices):
        MESSAGE = "message"
        NOTE = "note"
        CALL = "call"

    class State(models.TextChoices):
        RECEIVED = "received"
        EDITED = "edited"
        HIDDEN = "hidden"
        REMOVED = "removed"
        QUEUED = "queued"
        SENT = "sent"
        DELIVERED = "delivered"
        READ = "read"
        FAILED = "failed"

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="messages")
    account = models.ForeignKey(
        "plugins.ChannelAccount", null=True, blank=True, on_delete=models.PROTECT, related_name="messages"
    )
    external_id = models.CharField(max_length=512, null=True, blank=True)
    event_type = models.CharField(max_length=60, blank=True, default="")
    thread_key = models.CharField(max_length=512, blank=True, default="")
    direction = models.CharField(max_length=3, choices=Direction.choices)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.MESSAGE)
    visibility = models.CharField(max_length=10, choices=[("public", "public"), ("private", "private")])
    author_identity = models.ForeignKey(
        "customers.Identity", null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    author_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    subject = models.CharField(max_length=300, blank=True, default="")
    text = models.TextField(blank=True, default="")
    #: sanitized before storing; safe to render
    html = models.TextField(blank=True, default="")
    #: the platform's own timestamp of the message
    sent_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField()
    automated = models.BooleanField(default=False)
    reach_followers = models.PositiveBigIntegerField(null=True, blank=True)
    reach_verified = models.BooleanField(null=True, blank=True)
    #: VADER compound score of the customer's text, -1 (angry) … +1 (happy); None = not scored
    sentiment = models.FloatField(null=True, blank=True)
    call = models.JSONField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices)
    state_reason = models.CharField(max_length=500, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "external_id"], condition=Q(external_id__isnull=False), name="message_unique_external"
            ),
        ]
        indexes = [models.Index(fields=["ticket", "created_at"])]

    def __str__(self) -> str:
        return f"{self.direction} {self.kind} on #{self.ticket_id}"


def _attachment_path(instance: "Attachment", filename: str) -> str:
    return f"attachments/{instance.sha256[:2]}/{instance.sha256}"


class Attachment(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to=_attachment_path, max_length=300)
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=120)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    content_id = models.CharField(max_length=255, blank=True, default="")
    inline = models.BooleanField(default=False)


class TicketEvent(models.Model):
    """Append-only audit trail: who changed what, from what, to what, when."""

    class Actor(models.TextChoices):
        SYSTEM = "system"
        CUSTOMER = "customer"
        AGENT = "agent"
        RULE = "rule"

    #: no index of its own: the (ticket, at) index below leads with it
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="events", db_index=False)
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=10, choices=Actor.choices)
    actor_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=40)
    field = models.CharField(max_length=40, blank=True, default="")
    old = models.JSONField(null=True, blank=True)
    new = models.JSONField(null=True, blank=True)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    note = models.CharField(max_length=500, blank=True, default="")

    #: a transfer is one of these from one assignee/group to another (the first assignment is not one)
    TRANSFER_ACTIONS = ("assignee_changed", "group_changed")

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["ticket", "at"])]

    @property
    def is_transfer(self) -> bool:
        return self.action in self.TRANSFER_ACTIONS and self.old is not None and self.new is not None


class OutboundMessage(models.Model):
    """The outbox: one row per reply to deliver, so a channel outage never loses one."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="outbound")
    account = models.ForeignKey("plugins.ChannelAccount", on_delete=models.PROTECT, related_name="outbox")
    to_identity = models.ForeignKey("customers.Identity", on_delete=models.PROTECT, related_name="+")
    in_reply_to = models.CharField(max_length=512, blank=True, default="")
    references = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    #: when a sender took it; a SENDING row claimed long ago belongs to a crashed sender
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=1000, blank=True, default="")
    error_code = models.CharField(max_length=40, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "next_attempt_at"])]
