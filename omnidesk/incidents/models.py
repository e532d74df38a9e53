"""Incidents: many customers, one problem. Term counts per time bucket feed the detector."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class DetectorCursor(models.Model):
    """How far the detector has read the messages table (by id): it never reads a message twice."""

    name = models.CharField(max_length=40, primary_key=True)
    last_message_id = models.BigIntegerField(default=0)
    last_run_at = models.DateTimeField(null=True, blank=True)


class TermCount(models.Model):
    """Customer messages holding a term, per time bucket (by the message's platform time)."""

    term = models.CharField(max_length=100)
    bucket = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    #: the same messages, sentiment-weighted (angry ones count more)
    weight = models.FloatField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["term", "bucket"], name="incident_term_bucket")]
        indexes = [models.Index(fields=["bucket"], name="incident_termcount_bucket")]


class RecentMessage(models.Model):
    """Terms of the customer messages of the last windows: what a new incident links at once. Pruned."""

    message = models.OneToOneField("tickets.Message", on_delete=models.CASCADE, primary_key=True, related_name="+")
    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=40)
    sent_at = models.DateTimeField(db_index=True)
    terms = models.JSONField(default=list)


class Incident(models.Model):
    class Status(models.TextChoices):
        SUGGESTED = "suggested"
        ACTIVE = "active"
        RESOLVED = "resolved"
        DISMISSED = "dismissed"

    class Source(models.TextChoices):
        DETECTED = "detected"
        SIGNAL = "signal"
        MANUAL = "manual"

    title = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    source = models.CharField(max_length=10, choices=Source.choices)
    #: the terms a message must share with the incident to be linked (topics.matches)
    signature = models.JSONField(default=list)
    summary = models.TextField(blank=True, default="")
    opened_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    #: at detection: messages in the window and the baseline per window of the leading term
    window_count = models.PositiveIntegerField(null=True, blank=True)
    baseline = models.FloatField(null=True, blank=True)
    #: a status page / monitoring incident this one mirrors (API channel status signals)
    signal_account = models.ForeignKey(
        "plugins.ChannelAccount", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    signal_key = models.CharField(max_length=300, blank=True, default="")
    signal_status = models.CharField(max_length=20, blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["signal_account", "signal_key"], condition=~Q(signal_key=""), name="incident_unique_signal"
            )
        ]
        indexes = [models.Index(fields=["status", "opened_at"], name="incident_status_opened")]

    def __str__(self) -> str:
        return f"incident #{self.pk} {self.title}"


class IncidentTicket(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="links")
    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.CASCADE, related_name="incident_links")
    #: the customer message that matched, and its channel (kind of its account)
    message = models.ForeignKey("tickets.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    channel = models.CharField(max_length=40)
    linked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "ticket"], name="incident_ticket_once")]


class BulkReply(models.Model):
    """One text for every linked ticket; the same text twice is the same bulk reply (never sent twice)."""

    class Kind(models.TextChoices):
        UPDATE = "update"
        FOLLOW_UP = "follow_up"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="bulk_replies")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.UPDATE)
    text = models.TextField()
    #: the version for public channels with a length limit (a tweet); empty = move to private instead
    public_text = models.TextField(blank=True, default="")
    key = models.CharField(max_length=64)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "key"], name="bulk_reply_once")]


class BulkDelivery(models.Model):
    """What one ticket got from one bulk reply: the record that makes re-running send nothing twice."""

    class Outcome(models.TextChoices):
        QUEUED = "queued"  # a reply on the customer's channel, through the outbox
        SHORTENED = "shortened"  # the public version (or a shortened text) on a length-limited public channel
        HANDOFF = "handoff"  # too long to post publicly: a public acknowledgement, the text privately
        CALLBACK = "callback"  # a channel that cannot send (phone): a call-back task for an agent
        SKIPPED = "skipped"  # the channel's rules forbid it now (Messenger window closed)
        FAILED = "failed"

    bulk = models.ForeignKey(BulkReply, on_delete=models.CASCADE, related_name="deliveries")
    ticket = models.ForeignKey("tickets.Ticket", on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=40, blank=True, default="")
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    message = models.ForeignKey("tickets.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    note = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["bulk", "ticket"], name="bulk_delivery_once")]
