"""The X plugin against the conformance kit, on the payloads in fixtures/."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from channels_plugins.twitter.adapter import TwitterChannel
from channels_plugins.twitter.webhook import SIGNATURE_HEADER, sign
from omnidesk.plugins.contract import IdentityKind, IdentityRef, OutboundReply, WebhookRequest
from omnidesk.plugins.testing import PluginConformance

from .fakex import CUSTOMER_ID, OWN_ID


class TestTwitterConformance(PluginConformance):
    plugin_class = TwitterChannel
    fixtures_dir = Path(__file__).parent / "fixtures"
    # polling off and a closed port: nothing in the kit may reach X
    config = {"user_id": OWN_ID, "username": "TweepyDev", "poll_enabled": False, "api_base_url": "http://127.0.0.1:9"}
    secrets = {"consumer_secret": "x-consumer-secret"}
    account_slug = "acme-x"
    unknown_payload = (
        b'{"for_user_id": "' + OWN_ID.encode() + b'", "mute_events": [{"type": "mute", "created_timestamp": '
        b'"1763457100000", "source": {"id": "' + OWN_ID.encode() + b'"}, "target": {"id": "' + CUSTOMER_ID.encode() + b'"}}]}'
    )
    ticket_fixture = "mention__account_activity"

    def sign(self, request: WebhookRequest) -> WebhookRequest:
        return self.with_headers(request, {SIGNATURE_HEADER: sign("x-consumer-secret", request.body)})

    def make_reply(self, **changes: Any) -> OutboundReply:
        # A public reply to a customer's tweet: the 280 limit is about tweets (a DM may be 10,000).
        reply = OutboundReply(
            idempotency_key="conformance-reply-1",
            to=IdentityRef(IdentityKind.TWITTER, CUSTOMER_ID),
            text="Sorry to hear that. We are looking into it.",
            visibility="public",
            ticket_ref=1,
            in_reply_to="1990712204871446529",
        )
        return dataclasses.replace(reply, **changes)
