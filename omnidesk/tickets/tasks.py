"""Dramatiq actors for the outbox."""

import dramatiq

from . import outbox


@dramatiq.actor(queue_name="outbound", max_retries=5, min_backoff=1_000, max_backoff=60_000)
def send_outbound(outbound_id: int) -> None:
    outcome = outbox.outbound_send(outbound_id=outbound_id)
    if outcome.status in ("retry", "not-due") and outcome.retry_in_s is not None:
        send_outbound.send_with_options(args=(outbound_id,), delay=int(outcome.retry_in_s * 1000) + 50)


@dramatiq.actor(queue_name="maintenance", max_retries=0)
def sweep_outbox() -> None:
    for outbound_id in outbox.outbox_due_ids():
        send_outbound.send(outbound_id)
