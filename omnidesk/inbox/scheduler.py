"""Periodic jobs, enqueued on the broker: sweeps that make the database, not the broker, the truth."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    #: seconds between runs; None = only once, at start-up
    every_s: float | None
    enqueue: Callable[[], None]
    at_start: bool = False


def jobs() -> list[Job]:
    from omnidesk.incidents.tasks import detect_incidents
    from omnidesk.sla.tasks import sweep_sla
    from omnidesk.tickets.tasks import sweep_outbox

    from .tasks import sweep_inbound

    return [
        # At start-up every pending event is re-enqueued, however young: a previous run may have died.
        Job("sweep-inbound-all", None, lambda: sweep_inbound.send(0), at_start=True),
        Job("sweep-inbound", settings.OMNIDESK["SWEEP_INTERVAL_S"], lambda: sweep_inbound.send()),
        Job("sweep-outbox", settings.OMNIDESK["OUTBOX_SWEEP_INTERVAL_S"], lambda: sweep_outbox.send(), at_start=True),
        Job("sweep-sla", 60.0, lambda: sweep_sla.send(), at_start=True),
        Job("detect-incidents", settings.OMNIDESK["INCIDENT_DETECT_INTERVAL_S"], lambda: detect_incidents.send()),
    ]


def run_forever(stop: threading.Event, *, schedule: list[Job] | None = None, tick_s: float = 1.0) -> None:
    schedule = jobs() if schedule is None else schedule
    now = time.monotonic()
    due: dict[str, float | None] = {}
    for job in schedule:
        if job.at_start:
            _safe(job)
        due[job.name] = None if job.every_s is None else now + job.every_s
    while not stop.is_set():
        now = time.monotonic()
        for job in schedule:
            next_at = due[job.name]
            if next_at is not None and now >= next_at and job.every_s is not None:
                _safe(job)
                due[job.name] = now + job.every_s
        stop.wait(tick_s)


def _safe(job: Job) -> None:
    try:
        job.enqueue()
    except Exception as exc:  # noqa: BLE001 - the broker may be down; the next tick tries again
        log.warning("periodic job %s not enqueued: %s", job.name, exc)
