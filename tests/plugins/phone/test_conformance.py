"""The phone channel against the conformance kit: CTI events, Twilio callbacks and a Master.csv, recorded in fixtures/."""

from __future__ import annotations

from pathlib import Path

from channels_plugins.phone.adapter import SIGNATURE_HEADER, PhoneChannel, sign
from channels_plugins.phone.cti import TWILIO_HEADER, twilio_signature
from omnidesk.plugins.contract import WebhookRequest
from omnidesk.plugins.testing import PluginConformance
from urllib.parse import parse_qsl

SECRET = "s3cret"
TWILIO_TOKEN = "twilio-token"
CONFIG = {"default_region": "GB", "timezone": "Europe/London", "recording_column": "userfield",
          "recording_base_url": "https://pbx.example.com/recordings/"}


class TestPhoneConformance(PluginConformance):
    plugin_class = PhoneChannel
    fixtures_dir = Path(__file__).parent / "fixtures"
    config = CONFIG
    secrets = {"secret": SECRET, "twilio_auth_token": TWILIO_TOKEN}
    account_slug = "conformance-phone"
    unknown_payload = b'{"event": "transfer", "call_id": "pbx-1.2", "from": "201", "to": "202", "at": "2024-03-05T10:00:00Z"}'
    ticket_fixture = "cdr__asterisk_master_csv"

    def sign(self, request: WebhookRequest) -> WebhookRequest:
        if b"CallSid=" in request.body:  # a Twilio status callback, signed the way Twilio does
            params = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
            return self.with_headers(request, {TWILIO_HEADER: twilio_signature(TWILIO_TOKEN, request.url, params)})
        return self.with_headers(request, {SIGNATURE_HEADER: sign(SECRET, request.body)})
