"""Shared by the phone tests: a plugin from settings, the test secrets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels_plugins.phone.adapter import PhoneChannel, PhoneConfig
from omnidesk.plugins.config import load_config

SECRET = "s3cret"
TWILIO_TOKEN = "twilio-token"
BASE = {"default_region": "GB", "timezone": "Europe/London"}


def make_plugin(config: Mapping[str, Any] | None = None, **secrets: str) -> PhoneChannel:
    data = {**BASE, **(config or {})}
    stored = secrets or {"secret": SECRET, "twilio_auth_token": TWILIO_TOKEN}
    return PhoneChannel(load_config(PhoneConfig, data, stored), account_slug="acme-phone")  # type: ignore[arg-type]
