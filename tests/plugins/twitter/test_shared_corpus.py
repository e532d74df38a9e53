"""parse() over every recorded X response in ../shared/corpus/twitter (skips where the folder is absent).

Nothing may crash: each body gives contract items or a PluginError. The v1.1 status
(testgetstatus) is a full tweet with its author's followers_count, as Account Activity sends
them; the v2 recordings lack the expansions we request, so their items are Invalid.
"""

from __future__ import annotations

import glob
import json
import os

from channels_plugins.twitter.adapter import TwitterChannel, TwitterConfig
from omnidesk.plugins.config import load_config
from omnidesk.plugins.contract import DeliveryUpdate, Ignored, InboundMessage, Invalid, MessageUpdate, PluginError, RawEvent

from .conftest import SECRETS
from .fakex import OWN_ID

ITEMS = (InboundMessage, DeliveryUpdate, MessageUpdate, Ignored, Invalid)


def test_every_recorded_response_parses_or_is_refused_cleanly(shared_corpus: str) -> None:
    plugin = TwitterChannel(load_config(TwitterConfig, {"user_id": OWN_ID}, SECRETS))  # type: ignore[arg-type]
    files = sorted(glob.glob(os.path.join(shared_corpus, "twitter", "tweepy-decoded", "*.json")))
    assert files
    seen: dict[str, int] = {"responses": 0, "refused": 0, "messages": 0, "invalid": 0}
    messages: list[InboundMessage] = []
    for path in files:
        with open(path, encoding="utf-8") as fh:
            interactions = json.load(fh)
        for n, interaction in enumerate(interactions):
            body = interaction.get("body")
            if body is None or isinstance(body, str):
                continue
            seen["responses"] += 1
            raw = RawEvent(body=json.dumps(body).encode(), source_key=f"{os.path.basename(path)}#{n}")
            try:
                items = plugin.parse(raw)
            except PluginError:
                seen["refused"] += 1
                continue
            assert all(isinstance(i, ITEMS) for i in items), (path, n, items)
            messages += [i for i in items if isinstance(i, InboundMessage)]
            seen["invalid"] += sum(isinstance(i, Invalid) for i in items)
    seen["messages"] = len(messages)
    assert seen["responses"] > 20 and seen["invalid"] > 10, seen
    for m in messages:
        assert m.external_id and m.author.identity.value and m.sent_at is not None and m.sent_at.tzinfo
    # the v1.1 status carries its author's reach
    assert any(m.author.followers is not None for m in messages), seen
