"""Login throttling: failed sign-ins counted per username + client address in Django's cache.

After `LOGIN_MAX_FAILURES` failures for one username from one address (or `LOGIN_MAX_FAILURES_PER_IP`
for any usernames from one address) within `LOGIN_WINDOW_S`, sign-in is refused until the window
ends: login pages answer 429 with Retry-After, and `authenticate()` itself refuses (so every login
path, present or future, is covered). The cache must be shared between web processes in production
(CACHES uses Redis when REDIS_URL is set). If the cache is unreachable, sign-in is not blocked (a
Redis outage must not lock every agent out); the failure is logged.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)

PREFIX = "omnidesk:login"


def _limits() -> tuple[int, int, int]:
    conf = settings.OMNIDESK
    return conf["LOGIN_MAX_FAILURES"], conf["LOGIN_MAX_FAILURES_PER_IP"], conf["LOGIN_WINDOW_S"]


def client_address(request: Any) -> str:
    """The peer address as the server saw it (behind a proxy: uvicorn --proxy-headers sets it)."""
    return str(getattr(request, "META", {}).get("REMOTE_ADDR") or "unknown")


def _counters(request: Any, username: str) -> list[tuple[str, int]]:
    """(cache key, limit) of each counter one attempt counts against; usernames are hashed, never stored."""
    per_user, per_ip, _ = _limits()
    address = client_address(request)
    who = hashlib.sha256(f"{username.strip().casefold()}\x00{address}".encode()).hexdigest()[:32]
    where = hashlib.sha256(address.encode()).hexdigest()[:32]
    return [(f"{PREFIX}:user:{who}", per_user), (f"{PREFIX}:ip:{where}", per_ip)]


def login_lockout(*, request: Any, username: str) -> int:
    """Seconds until this username may try again from this address; 0 when it may now."""
    now = time.time()
    try:
        keys = _counters(request, username)
        found = cache.get_many([k for k, _ in keys] + [f"{k}:until" for k, _ in keys])
    except Exception as exc:  # noqa: BLE001 - a cache outage must not lock everyone out
        log.warning("login throttle unavailable (sign-in not limited): %s", type(exc).__name__)
        return 0
    waits = [
        int(found.get(f"{key}:until", now) - now) + 1
        for key, limit in keys
        if int(found.get(key) or 0) >= limit
    ]
    return max([w for w in waits if w > 0], default=0)


def login_failure_record(*, request: Any, username: str) -> None:
    """Count one failed attempt; the first failure opens the window, later ones never extend it."""
    window = _limits()[2]
    try:
        for key, _ in _counters(request, username):
            if cache.add(key, 0, timeout=window):
                cache.set(f"{key}:until", time.time() + window, timeout=window)
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.set(key, 1, timeout=window)
    except Exception as exc:  # noqa: BLE001
        log.warning("login throttle unavailable (failure not counted): %s", type(exc).__name__)


def login_success_record(*, request: Any, username: str) -> None:
    """A successful sign-in clears its username + address counter (not the address-wide one)."""
    try:
        key = _counters(request, username)[0][0]
        cache.delete_many([key, f"{key}:until"])
    except Exception as exc:  # noqa: BLE001
        log.warning("login throttle unavailable: %s", type(exc).__name__)


def _username(credentials: dict[str, Any]) -> str:
    from django.contrib.auth import get_user_model

    value = credentials.get(get_user_model().USERNAME_FIELD, credentials.get("username"))
    return str(value or "")


def _on_failure(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    if request is not None:
        login_failure_record(request=request, username=_username(credentials))


def _on_success(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if request is not None:
        login_success_record(request=request, username=user.get_username())


def connect_signals() -> None:
    from django.contrib.auth.signals import user_logged_in, user_login_failed

    user_login_failed.connect(_on_failure, dispatch_uid="omnidesk-login-throttle-failure")
    user_logged_in.connect(_on_success, dispatch_uid="omnidesk-login-throttle-success")
