"""Channel accounts in the admin: health at a glance; config as JSON; secrets write-only.

Saving goes through `channel_account_save`, so the plugin's schema decides what is valid and a
`ConfigInvalid` comes back as a form error. No secret value, not even its ciphertext, is rendered.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest
from django.utils.text import Truncator

from .config import secret_fields
from .crypto import decrypt_secrets
from .errors import PluginError
from .models import ChannelAccount
from .registry import UnknownPlugin, registry
from .services import channel_account_save

SECRET_PREFIX = "secret__"


class _DryRun(Exception):
    pass


def _secret_owners(kind: str | None = None) -> dict[str, list[str]]:
    """Secret setting name → kinds of the installed plugins that declare it (only `kind`'s when given)."""
    owners: dict[str, list[str]] = {}
    for plugin_kind, cls in registry().plugins.items():
        if kind is not None and plugin_kind != kind:
            continue
        for name in secret_fields(cls.config_schema):
            owners.setdefault(name, []).append(plugin_kind)
    return owners


class ChannelAccountForm(forms.ModelForm):
    kind = forms.ChoiceField(help_text="the channel plugin; fixed once the account exists")

    class Meta:
        model = ChannelAccount
        fields = ["kind", "slug", "name", "enabled", "config", "default_group", "default_region"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        kinds = list(registry().plugins)
        if self.instance.pk and self.instance.kind not in kinds:
            kinds.append(self.instance.kind)  # a plugin since uninstalled: show it, the save will say so
        self.fields["kind"].choices = [(k, k) for k in kinds]
        if self.instance.pk:
            self.fields["kind"].disabled = True
        stored = self._stored_secret_names()
        for name, kinds_using in sorted(_secret_owners(self.instance.kind if self.instance.pk else None).items()):
            state = "stored" if name in stored else "not set"
            self.fields[SECRET_PREFIX + name] = forms.CharField(
                label=f"Secret: {name}",
                required=False,
                strip=False,
                widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
                help_text=f"write-only ({state}); leave blank to keep the stored value. Used by: {', '.join(kinds_using)}",
            )

    def _stored_secret_names(self) -> set[str]:
        if not self.instance.pk:
            return set()
        try:
            return set(decrypt_secrets(self.instance.secrets_encrypted))
        except ValueError:
            return set()

    def secrets(self) -> dict[str, str]:
        return {
            key[len(SECRET_PREFIX):]: value
            for key, value in self.cleaned_data.items()
            if key.startswith(SECRET_PREFIX) and value
        }

    def service_kwargs(self, account: ChannelAccount | None) -> dict[str, Any]:
        data = self.cleaned_data
        group = data.get("default_group")
        return {
            "kind": data["kind"], "slug": data["slug"], "name": data["name"], "config": data.get("config") or {},
            "secrets": self.secrets(), "enabled": data.get("enabled", False),
            "default_group_id": group.pk if group else None, "default_region": (data.get("default_region") or "").upper(),
            "account": account,
        }

    def clean_config(self) -> Any:
        value = self.cleaned_data.get("config")
        if value is not None and not isinstance(value, dict):
            raise forms.ValidationError("must be a JSON object of settings, such as {\"callback_url\": \"\"}")
        return value

    def _post_clean(self) -> None:
        super()._post_clean()  # field and model validation (a taken slug) first
        if self.errors:
            return
        try:
            cls_secrets = set(secret_fields(registry().plugins[self.cleaned_data["kind"]].config_schema))
        except KeyError:
            cls_secrets = set()
        for name in set(self.secrets()) - cls_secrets:
            self.add_error(SECRET_PREFIX + name, f"the {self.cleaned_data['kind']} channel has no secret {name!r}")
        if self.errors:
            return
        # The service is the one judge of validity: run it for real and roll it back.
        fresh = ChannelAccount.objects.get(pk=self.instance.pk) if self.instance.pk else None
        try:
            with transaction.atomic():
                channel_account_save(**self.service_kwargs(fresh))
                raise _DryRun
        except _DryRun:
            pass
        except (PluginError, UnknownPlugin, ValueError) as exc:
            self.add_error(None, str(exc))


@admin.register(ChannelAccount)
class ChannelAccountAdmin(admin.ModelAdmin):
    form = ChannelAccountForm
    list_display = ["slug", "name", "kind", "enabled", "last_success_at", "last_error_short", "needs_reauthorization"]
    list_filter = ["kind", "enabled", "needs_reauthorization"]
    search_fields = ["slug", "name"]
    readonly_fields = ["webhook_path", "secrets_set", "last_success_at", "last_error", "last_error_at",
                       "needs_reauthorization", "created_at", "updated_at"]

    def get_fieldsets(self, request: HttpRequest, obj: ChannelAccount | None = None) -> Any:
        # view-only staff get no secret inputs at all (a read-only render would look them up on the model)
        can_write = self.has_change_permission(request, obj) if obj else self.has_add_permission(request)
        kind = obj.kind if obj is not None else None
        secret_names = [SECRET_PREFIX + name for name in sorted(_secret_owners(kind))] if can_write else []
        return [
            (None, {"fields": ["kind", "slug", "name", "enabled", "default_group", "default_region"]}),
            ("Settings", {"fields": ["config"], "description": "Non-secret settings as JSON, checked by the plugin."}),
            ("Secrets", {"fields": [*secret_names, "secrets_set"],
                         "description": "Write-only. Stored encrypted; never shown again."}),
            ("Health", {"fields": ["webhook_path", "last_success_at", "last_error", "last_error_at",
                                   "needs_reauthorization", "created_at", "updated_at"]}),
        ]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        # the secret fields are added per instance in the form's __init__, not declared on the model
        kwargs["fields"] = ChannelAccountForm.Meta.fields
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request: HttpRequest, obj: ChannelAccount, form: ChannelAccountForm, change: bool) -> None:
        account = ChannelAccount.objects.get(pk=obj.pk) if change else None
        saved = channel_account_save(**form.service_kwargs(account))
        obj.pk = saved.pk
        obj.refresh_from_db()

    @admin.display(description="last error")
    def last_error_short(self, obj: ChannelAccount) -> str:
        return Truncator(obj.last_error).chars(80)

    @admin.display(description="webhook URL path")
    def webhook_path(self, obj: ChannelAccount) -> str:
        return f"/hooks/{obj.slug}/" if obj.slug else "-"

    @admin.display(description="secrets stored")
    def secrets_set(self, obj: ChannelAccount) -> str:
        try:
            names = sorted(decrypt_secrets(obj.secrets_encrypted))
        except ValueError as exc:
            return str(exc)
        return ", ".join(names) or "none"
