"""The API channel against the conformance kit, on recorded payloads in fixtures/."""

from __future__ import annotations

from pathlib import Path

from channels_plugins.api.adapter import ApiChannel
from channels_plugins.api.client import SIGNATURE_HEADER, sign
from omnidesk.plugins.contract import WebhookRequest
from omnidesk.plugins.testing import PluginConformance


class TestApiConformance(PluginConformance):
    plugin_class = ApiChannel
    fixtures_dir = Path(__file__).parent / "fixtures"
    config = {"callback_url": ""}
    secrets = {"secret": "s3cret"}
    account_slug = "acme-api"
    unknown_payload = b'{"type": "reaction", "id": "r-1", "emoji": "+1", "author": {"id": "visitor-4417"}}'

    def sign(self, request: WebhookRequest) -> WebhookRequest:
        return self.with_headers(request, {SIGNATURE_HEADER: sign("s3cret", request.body)})
