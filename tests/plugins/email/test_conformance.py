"""The email channel against the conformance kit, on the recorded mails in fixtures/."""

from __future__ import annotations

from pathlib import Path

from channels_plugins.email.adapter import EmailChannel
from omnidesk.plugins.testing import PluginConformance

FIXTURES = Path(__file__).parent / "fixtures"


class TestEmailConformance(PluginConformance):
    plugin_class = EmailChannel
    fixtures_dir = FIXTURES
    config = {"address": "support@desk.example"}
    account_slug = "support"
    unknown_payload = (FIXTURES / "unsupported__message_partial.eml").read_bytes()
    ticket_fixture = "message__gmail_reply_quoted"
