from django.db import models


class Customer(models.Model):
    display_name = models.CharField(max_length=200, blank=True, default="")
    tags = models.JSONField(default=list, blank=True)
    #: set when this customer was merged into another; the survivor holds the identities
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.display_name or f"Customer {self.pk}"


class Identity(models.Model):
    """How a customer is known on one channel. (kind, namespace, value) is unique."""

    class Kind(models.TextChoices):
        EMAIL = "email"
        PHONE = "phone"
        TWITTER = "twitter"
        FACEBOOK = "facebook"
        EXTERNAL = "external"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    namespace = models.CharField(max_length=120, blank=True, default="")
    value = models.CharField(max_length=320)
    display_name = models.CharField(max_length=200, blank=True, default="")
    followers = models.PositiveBigIntegerField(null=True, blank=True)
    verified = models.BooleanField(null=True, blank=True)
    reach_seen_at = models.DateTimeField(null=True, blank=True)
    #: an address that bounced permanently; replies to it are held with a warning
    undeliverable = models.BooleanField(default=False)
    undeliverable_reason = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "namespace", "value"], name="identity_unique_value"),
        ]
        verbose_name_plural = "identities"

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"
