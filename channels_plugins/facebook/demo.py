"""Sample Page webhooks for `make run`: shaped like Meta's, with made-up ids, times relative to now."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

POST = "300000000000001"


def demo_payloads(page: str, now: datetime) -> list[dict[str, Any]]:
    def s(minutes: int) -> int:  # the feed counts seconds
        return int((now - timedelta(minutes=minutes)).timestamp())

    def ms(minutes: int) -> int:  # Messenger counts milliseconds
        return s(minutes) * 1000

    post_id = f"{page}_{POST}"
    comment = {
        "field": "feed",
        "value": {
            "item": "comment", "verb": "add", "post_id": post_id, "parent_id": post_id,
            "comment_id": f"{POST}_500000000000001", "created_time": s(25),
            "from": {"id": "200000000000001", "name": "Rosa Parks"},
            "message": "My order #1042 arrived broken and nobody answers the phone. Not impressed.",
        },
    }
    message = {
        "sender": {"id": "400000000000001"}, "recipient": {"id": page}, "timestamp": ms(15),
        "message": {
            "mid": f"m_demo-{s(15)}-1", "text": "Hi! The lamp I bought flickers, here is a photo.",
            "attachments": [{"type": "image", "payload": {"url": "https://example.com/demo/lamp.jpg"}}],
        },
    }
    batch = {
        "object": "page",
        "entry": [
            {"id": page, "time": s(5), "changes": [
                {"field": "feed", "value": {
                    "item": "comment", "verb": "add", "post_id": post_id, "parent_id": post_id,
                    "comment_id": f"{POST}_500000000000002", "created_time": s(6),
                    "from": {"id": "200000000000002", "name": "Mary Jackson"},
                    "message": "Same here, the delivery is two weeks late. Any news?",
                }},
                {"field": "feed", "value": {
                    "item": "reaction", "verb": "add", "post_id": post_id, "reaction_type": "like",
                    "from": {"id": "200000000000003", "name": "Dorothy Vaughan"}, "created_time": s(5),
                }},
            ]},
            {"id": page, "time": ms(4), "messaging": [
                {"sender": {"id": "400000000000002"}, "recipient": {"id": page}, "timestamp": ms(4),
                 "message": {"mid": f"m_demo-{s(4)}-2", "text": "Do you ship to Norway?",
                             "quick_reply": {"payload": "SHIPPING"}}},
            ]},
        ],
    }
    return [
        {"object": "page", "entry": [{"id": page, "time": s(25), "changes": [comment]}]},
        {"object": "page", "entry": [{"id": page, "time": ms(15), "messaging": [message]}]},
        batch,
    ]
