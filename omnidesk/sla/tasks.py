"""Dramatiq actors of the SLA engine."""

import dramatiq

from . import services


@dramatiq.actor(queue_name="maintenance", max_retries=0)
def sweep_sla() -> None:
    services.sla_sweep()


@dramatiq.actor(queue_name="maintenance", max_retries=3, time_limit=3_600_000)
def recompute_open_tickets() -> None:
    services.sla_recompute_open()
