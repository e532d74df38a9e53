"""Dramatiq actors of the ingest pipeline. Thin: ids in, one service call."""

import dramatiq

from . import services


@dramatiq.actor(queue_name="inbound", max_retries=20, min_backoff=1_000, max_backoff=60_000)
def apply_inbound_events(event_ids: list[int]) -> None:
    services.inbound_events_apply(event_ids=event_ids)


@dramatiq.actor(queue_name="maintenance", max_retries=0)
def sweep_inbound(older_than_s: float | None = None) -> None:
    """Re-enqueue what the broker lost; the claim's row locks make a double nudge harmless."""
    services.inbound_event_enqueue(services.inbound_pending_ids(older_than_s=older_than_s))  # sent in batches
