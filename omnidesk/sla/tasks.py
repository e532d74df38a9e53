"""Dramatiq actors of the SLA engine."""

import dramatiq

from . import recompute, services


@dramatiq.actor(queue_name="maintenance", max_retries=0)
def sweep_sla() -> None:
    services.sla_sweep()
    recompute.recompute_if_owed()


@dramatiq.actor(queue_name="maintenance", max_retries=3, time_limit=3_600_000)
def recompute_open_tickets() -> None:
    recompute.recompute_requested()
