from django.db import models


class InboundEvent(models.Model):
    """Raw input exactly as it arrived, committed before the sender is acknowledged."""

    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSED = "processed"
        FAILED = "failed"
        IGNORED = "ignored"

    account = models.ForeignKey("plugins.ChannelAccount", on_delete=models.PROTECT, related_name="events")
    #: the source's own key (IMAP UID) or a hash of the body: a redelivery is not stored twice
    dedupe_key = models.CharField(max_length=300)
    body = models.BinaryField()
    headers = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)
    #: what parse made of it: counts per outcome and event type
    summary = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "dedupe_key"], name="event_unique_dedupe")]
        indexes = [models.Index(fields=["status", "received_at"])]

    def __str__(self) -> str:
        return f"event {self.pk} ({self.status})"


class Cursor(models.Model):
    """Where a poller stopped: stored only after the items before it are committed."""

    account = models.ForeignKey("plugins.ChannelAccount", on_delete=models.CASCADE, related_name="cursors")
    name = models.CharField(max_length=200, default="default")
    value = models.TextField(blank=True, default="")
    #: do not poll again before this (rate limits, backoff)
    not_before = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "name"], name="cursor_unique_name")]
