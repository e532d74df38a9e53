from django.conf import settings
from django.db import models


class Group(models.Model):
    """A team. Tickets belong to one; agents see the tickets of their groups."""

    name = models.CharField(max_length=120, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

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

    def __str__(self) -> str:
        return self.user.get_username()
