from django.conf import settings
from django.db import models
from django.utils import timezone


class Group(models.Model):
    """A team. Tickets belong to one; agents see the tickets of their groups."""

    class Strategy(models.TextChoices):
        PULL = "pull", "pull only (agents take the next ticket)"
        ROUND_ROBIN = "round_robin", "round-robin among online agents"
        LEAST_LOADED = "least_loaded", "least loaded within capacity"
        SKILLS = "skills", "skills match, then least loaded"

    name = models.CharField(max_length=120, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    #: skills every agent taking this group's tickets needs (the "skills" strategy and the queue)
    skills = models.JSONField(default=list, blank=True)
    strategy = models.CharField(max_length=20, choices=Strategy.choices, default=Strategy.PULL)
    #: round-robin pointer: the agent (pk) who got the last ticket; the next one after him gets the next
    round_robin_last = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Agent(models.Model):
    class Role(models.TextChoices):
        AGENT = "agent"
        MANAGER = "manager"

    class Presence(models.TextChoices):
        ONLINE = "online"
        AWAY = "away"
        OFFLINE = "offline"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.AGENT)
    groups = models.ManyToManyField(Group, blank=True, related_name="agents")
    capacity = models.PositiveIntegerField(default=20, help_text="most open tickets assigned at once")
    presence = models.CharField(max_length=10, choices=Presence.choices, default=Presence.OFFLINE)
    skills = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return self.user.get_username()


class RuleQuerySet(models.QuerySet):
    def update(self, **kwargs: object) -> int:
        """Bulk updates move `updated_at` too (auto_now only fires on save()): the rule cache of
        `routing.services.rules_active` notices a change by it, in every process."""
        kwargs.setdefault("updated_at", timezone.now())
        return super().update(**kwargs)


class Rule(models.Model):
    """An ordered condition → action rule; the same rules run for every channel (see rules_engine)."""

    objects = RuleQuerySet.as_manager()

    name = models.CharField(max_length=120, unique=True)
    description = models.CharField(max_length=500, blank=True, default="")
    position = models.PositiveIntegerField(default=100, help_text="lower runs first")
    active = models.BooleanField(default=True)
    #: subset of ticket_created, customer_message, agent_reply, sla_warning, sla_breach
    events = models.JSONField(default=list)
    #: all must hold: [{"field": "followers", "op": ">=", "value": 10000}, ...]
    conditions = models.JSONField(default=list, blank=True)
    #: when not empty, at least one must hold too
    any_conditions = models.JSONField(default=list, blank=True)
    #: [{"type": "set_priority", "value": "high"}, {"type": "escalate"}, ...]
    actions = models.JSONField(default=list)
    stop_processing = models.BooleanField(default=False, help_text="later rules do not run when this one fires")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        return self.name

    def as_spec(self) -> dict:
        """The plain-data form the pure engine evaluates."""
        return {
            "id": self.pk, "name": self.name, "position": self.position, "events": list(self.events),
            "conditions": list(self.conditions), "any_conditions": list(self.any_conditions),
            "actions": list(self.actions), "stop_processing": self.stop_processing,
        }
