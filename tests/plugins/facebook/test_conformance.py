"""The Facebook channel against the conformance kit, on the payloads in fixtures/."""

from __future__ import annotations

from pathlib import Path

from channels_plugins.facebook.adapter import FacebookChannel
from channels_plugins.facebook.webhook import SIGNATURE_HEADER, sign
from omnidesk.plugins.contract import WebhookRequest
from omnidesk.plugins.testing import PluginConformance

from .conftest import APP_SECRET, PAGE, SECRETS


class TestFacebookConformance(PluginConformance):
    plugin_class = FacebookChannel
    fixtures_dir = Path(__file__).parent / "fixtures"
    config = {"page_id": PAGE}
    secrets = SECRETS
    account_slug = "acme-facebook"
    ticket_fixture = "comment__batch_pages_and_messenger"
    unknown_payload = b'{"object": "page", "entry": [{"id": "1234567890321", "time": 1, "changes": [{"field": "leadgen", "value": {"leadgen_id": 1}}]}]}'

    def sign(self, request: WebhookRequest) -> WebhookRequest:
        return self.with_headers(request, {SIGNATURE_HEADER: sign(APP_SECRET, request.body)})
