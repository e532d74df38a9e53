from django.db import models

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def default_hours() -> dict[str, list[list[str]]]:
    return {day: [["09:00", "17:00"]] for day in WEEKDAYS[:5]}


class Calendar(models.Model):
    """Business hours: a time zone, weekly ranges (several a day), public holidays and custom closed dates."""

    name = models.CharField(max_length=120, unique=True)
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA name, e.g. Europe/Berlin")
    hours = models.JSONField(default=default_hours, help_text='{"mon": [["09:00","12:00"],["13:00","17:00"]], ...}')
    holiday_country = models.CharField(max_length=3, blank=True, default="", help_text="ISO code for the holidays package")
    holiday_subdivision = models.CharField(max_length=10, blank=True, default="")
    closed_dates = models.JSONField(default=list, blank=True, help_text='extra closed days, ["2026-12-24", ...]')

    def __str__(self) -> str:
        return self.name


class Policy(models.Model):
    """Ordered: the first active policy whose conditions all match a ticket applies to it."""

    name = models.CharField(max_length=120, unique=True)
    position = models.PositiveIntegerField(default=100, help_text="lower is evaluated first")
    active = models.BooleanField(default=True)
    #: {"priority": [...], "customer_tags": [...], "groups": [ids], "visibility": [...], "channels": [...]};
    #: an absent key matches everything
    conditions = models.JSONField(default=dict, blank=True)
    calendar = models.ForeignKey(
        Calendar, null=True, blank=True, on_delete=models.PROTECT, help_text="empty = calendar time (24/7)"
    )
    #: minutes per priority: {"normal": {"first_response": 240, "next_response": 480, "resolution": 2880}, ...}
    targets = models.JSONField(default=dict)
    warn_at_percent = models.PositiveSmallIntegerField(default=80)

    class Meta:
        ordering = ["position", "pk"]
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return self.name


class RecomputeRequest(models.Model):
    """The one row that makes "recompute every open ticket" durable (a policy or calendar changed).

    Written in the same transaction as the change, so a nudge the broker loses is found by the SLA
    sweep: `requested_at` later than `done_for` means a recompute is owed.
    """

    requested_at = models.DateTimeField(null=True, blank=True)
    #: the `requested_at` the last finished recompute started from (it covers every change until then)
    done_for = models.DateTimeField(null=True, blank=True)
    #: written by a running recompute with each batch; None when none runs
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(pk=1), name="sla_recompute_request_singleton")]
