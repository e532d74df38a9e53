from django.db import models


class ChannelAccount(models.Model):
    """One connected account of a channel plugin (a mailbox, an X handle, a Facebook page)."""

    kind = models.CharField(max_length=40, help_text="the plugin's entry-point name")
    slug = models.SlugField(max_length=80, unique=True, help_text="webhooks arrive at /hooks/<slug>/")
    name = models.CharField(max_length=200)
    config = models.JSONField(default=dict, blank=True, help_text="non-secret settings, validated by the plugin")
    secrets_encrypted = models.TextField(blank=True, default="", editable=False)
    enabled = models.BooleanField(default=True)
    default_group = models.ForeignKey(
        "routing.Group", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    default_region = models.CharField(
        max_length=2, blank=True, default="", help_text="ISO country for phone numbers without +"
    )
    # health
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)
    needs_reauthorization = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"
