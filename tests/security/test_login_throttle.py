"""Sign-in is limited: 5 failures per username + address in 15 minutes, then 429 with Retry-After."""

from __future__ import annotations

import logging
import os
import time
import uuid

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.views import LoginView
from django.test import Client, RequestFactory
from django.urls import resolve

from omnidesk.security.middleware import LOGIN_VIEWS
from tests.conftest import need, reachable

from .routes import routes

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def own_cache(settings):  # type: ignore[no-untyped-def]
    """A cache of this test's own, so counts never leak between tests (nor into a shared Redis)."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": f"throttle-{uuid.uuid4().hex}"}}


def _sign_in(url: str, username: str, password: str, address: str = "10.0.0.1"):  # type: ignore[no-untyped-def]
    return Client(REMOTE_ADDR=address).post(url, {"username": username, "password": password})


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_five_failures_lock_the_username_from_that_address(url, manager) -> None:  # type: ignore[no-untyped-def]
    manager.is_staff = True  # the admin signs in staff only
    manager.save()
    for _ in range(5):
        failed = _sign_in(url, "meg", "wrong")
        assert failed.status_code == 200 and "username" in failed.content.decode()  # the form, with its error
    locked = _sign_in(url, "meg", "pw-meg")  # even the right password, now
    assert locked.status_code == 429
    assert 840 <= int(locked["Retry-After"]) <= 901
    assert "Too many failed sign-ins" in locked.content.decode()
    assert locked["Content-Security-Policy"]  # the headers of every response
    assert _sign_in(url, "meg", "pw-meg", address="10.0.0.2").status_code == 302  # another address
    assert _sign_in(url, "MEG ", "wrong").status_code == 429  # the same username, spelt otherwise


def test_the_lock_ends_with_the_window_and_success_resets_the_count(manager, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for _ in range(4):
        _sign_in("/accounts/login/", "meg", "wrong")
    assert _sign_in("/accounts/login/", "meg", "pw-meg").status_code == 302  # clears meg's count
    for _ in range(4):
        _sign_in("/accounts/login/", "meg", "wrong")
    assert _sign_in("/accounts/login/", "meg", "pw-meg").status_code == 302  # 4 + 4 never reached 5
    for _ in range(5):
        _sign_in("/accounts/login/", "meg", "wrong")
    assert _sign_in("/accounts/login/", "meg", "pw-meg").status_code == 429
    later = time.time() + 15 * 60 + 1
    monkeypatch.setattr(time, "time", lambda: later)  # the cache's clock too
    assert _sign_in("/accounts/login/", "meg", "pw-meg").status_code == 302


def test_one_address_trying_many_usernames_is_limited_too(manager, settings) -> None:  # type: ignore[no-untyped-def]
    settings.OMNIDESK = {**settings.OMNIDESK, "LOGIN_MAX_FAILURES_PER_IP": 8}
    for n in range(8):
        _sign_in("/accounts/login/", f"guess{n}", "wrong")
    assert _sign_in("/accounts/login/", "meg", "pw-meg").status_code == 429
    assert _sign_in("/accounts/login/", "meg", "pw-meg", address="10.0.0.9").status_code == 302


def test_authenticate_itself_refuses_during_a_lockout(manager) -> None:  # type: ignore[no-untyped-def]
    """Any login path (a future API login too) goes through authenticate(), which refuses."""
    request = RequestFactory().post("/anywhere/", REMOTE_ADDR="10.0.0.3")
    for _ in range(5):
        assert authenticate(request, username="meg", password="wrong") is None
    assert authenticate(request, username="meg", password="pw-meg") is None
    other = RequestFactory().post("/anywhere/", REMOTE_ADDR="10.0.0.4")
    assert authenticate(other, username="meg", password="pw-meg") == manager


def test_every_login_view_is_throttled() -> None:
    """A route whose view takes a password must be listed in LOGIN_VIEWS (the 429 page)."""
    from rest_framework.authtoken.views import ObtainAuthToken

    takes_password = set()
    for r in routes():
        if "<" in r.pattern or "(" in r.pattern:
            continue
        view = resolve("/" + r.pattern).func
        cls = getattr(view, "view_class", None) or getattr(view, "cls", None)
        if (isinstance(cls, type) and issubclass(cls, (LoginView, ObtainAuthToken))) or r.pattern == "admin/login/":
            takes_password.add(r.name)
    assert takes_password == set(LOGIN_VIEWS), takes_password


def test_a_cache_outage_never_locks_everyone_out(manager, settings, caplog) -> None:  # type: ignore[no-untyped-def]
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0",
                                   "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2}}}
    with caplog.at_level(logging.WARNING, logger="omnidesk.security.throttle"):
        assert _sign_in("/accounts/login/", "meg", "wrong").status_code == 200
        assert _sign_in("/accounts/login/", "meg", "pw-meg").status_code == 302
    assert "login throttle unavailable" in caplog.text


def test_web_processes_share_the_count_through_redis(manager, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Production settings put the cache in Redis (REDIS_URL): another process sees the same count."""
    url = os.environ.get("REDIS_URL", "")
    need(None if url and reachable(url) else "needs Redis: set REDIS_URL=redis://...")
    from django.core.cache.backends.redis import RedisCache

    from omnidesk.security import throttle

    prefix = f"test-{uuid.uuid4().hex}"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url,
                                   "KEY_PREFIX": prefix}}
    other_process = RedisCache(url, {"KEY_PREFIX": prefix})  # its own connection pool, nothing in memory shared
    try:
        for _ in range(5):
            _sign_in("/accounts/login/", "meg", "wrong")
        monkeypatch.setattr(throttle, "cache", other_process)
        request = RequestFactory().post("/accounts/login/", REMOTE_ADDR="10.0.0.1")
        assert 840 <= throttle.login_lockout(request=request, username="meg") <= 901
    finally:
        client = other_process._cache.get_client(write=True)
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
