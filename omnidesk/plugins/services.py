"""Channel accounts: building their plugin instance, saving config and secrets, recording health."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils import timezone

from omnidesk.security.redact import secrets_redact, secrets_remember

from .config import Secret, load_config, secret_fields
from .contract import ChannelPlugin
from .crypto import decrypt_secrets, encrypt_secrets
from .models import ChannelAccount
from .registry import plugin_class

_cache: dict[int, tuple[Any, ChannelPlugin]] = {}


def account_plugin(account: ChannelAccount) -> ChannelPlugin:
    """The plugin instance serving this account (cached until the account row changes)."""
    stamp = (account.kind, account.updated_at, account.secrets_encrypted, repr(account.config))
    hit = _cache.get(account.pk)
    if hit and hit[0] == stamp:
        return hit[1]
    cls = plugin_class(account.kind)
    config = load_config(cls.config_schema, account.config, decrypt_secrets(account.secrets_encrypted))
    # every secret this process holds is redacted from stored errors and log lines (omnidesk/security)
    secrets_remember(v.reveal() for v in vars(config).values() if isinstance(v, Secret))
    plugin = cls(config, account_slug=account.slug)
    _cache[account.pk] = (stamp, plugin)
    return plugin


def channel_account_save(
    *,
    kind: str,
    slug: str,
    name: str,
    config: Mapping[str, Any],
    secrets: Mapping[str, str] | None = None,
    enabled: bool = True,
    default_group_id: int | None = None,
    default_region: str = "",
    account: ChannelAccount | None = None,
) -> ChannelAccount:
    """Create or update an account; the config is validated by the plugin before anything is saved.

    Secrets given here are encrypted; secrets not given keep their stored value.
    """
    cls = plugin_class(kind)
    allowed_secrets = set(secret_fields(cls.config_schema))
    stored = decrypt_secrets(account.secrets_encrypted) if account else {}
    merged = {**stored, **{k: v for k, v in (secrets or {}).items() if v is not None}}
    unknown = set(merged) - allowed_secrets
    if unknown:
        from .errors import ConfigInvalid

        raise ConfigInvalid(f"{cls.config_schema.__name__}: unknown secret(s): {', '.join(sorted(unknown))}")
    load_config(cls.config_schema, config, merged)  # raises ConfigInvalid with every problem
    account = account or ChannelAccount(kind=kind)
    account.kind = kind
    account.slug = slug
    account.name = name
    account.config = dict(config)
    if account.pk and merged != stored:
        # New credentials: try again. Held replies go out on the next outbox sweep.
        account.needs_reauthorization = False
    account.secrets_encrypted = encrypt_secrets(merged)
    account.enabled = enabled
    account.default_group_id = default_group_id
    account.default_region = default_region
    account.save()
    return account


def channel_account_record_success(*, account: ChannelAccount) -> None:
    now = timezone.now()
    ChannelAccount.objects.filter(pk=account.pk).update(last_success_at=now, needs_reauthorization=False)


def channel_account_record_error(*, account: ChannelAccount, error: str, needs_reauthorization: bool = False) -> None:
    fields: dict[str, Any] = {"last_error": secrets_redact(error)[:2000], "last_error_at": timezone.now()}
    if needs_reauthorization:
        fields["needs_reauthorization"] = True
    ChannelAccount.objects.filter(pk=account.pk).update(**fields)
