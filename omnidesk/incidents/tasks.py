"""Dramatiq actors of incidents: thin, each calls one service."""

import dramatiq

from omnidesk.broker import nudge

from . import bulk, detection


@dramatiq.actor(queue_name="maintenance", max_retries=0, time_limit=600_000)
def detect_incidents() -> None:
    detection.incidents_detect()
    for bulk_id in bulk.bulk_reply_pending_ids():  # a bulk reply whose worker died, or whose nudge was lost
        nudge(deliver_bulk_reply, bulk_id)


@dramatiq.actor(queue_name="outbound", max_retries=3, min_backoff=5_000, time_limit=3_600_000)
def deliver_bulk_reply(bulk_id: int) -> None:
    bulk.bulk_reply_deliver(bulk_id=bulk_id)
