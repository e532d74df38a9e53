"""Enqueueing that never fails the caller: the database row is the truth, the broker a nudge.

When the broker is down the work waits for the periodic sweeps; the caller's commit stands.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def nudge(actor: Any, *args: Any, **options: Any) -> bool:
    try:
        if options:
            actor.send_with_options(args=args, **options)
        else:
            actor.send(*args)
        return True
    except Exception as exc:  # noqa: BLE001 - any broker failure: the sweep takes over
        log.warning("could not enqueue %s (a sweep will): %s", getattr(actor, "actor_name", actor), exc)
        return False
