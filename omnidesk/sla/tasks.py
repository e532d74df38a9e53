"""Dramatiq actors of the SLA engine."""

import dramatiq

from . import services


@dramatiq.actor(queue_name="maintenance", max_retries=0)
def sweep_sla() -> None:
    services.sla_sweep()
