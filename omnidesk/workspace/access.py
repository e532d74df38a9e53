"""Every workspace page: logged in, desk staff, strict security headers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.urls import reverse

from omnidesk.routing.selectors import user_can_work, user_is_manager
from omnidesk.security.headers import security_headers


def secure_headers(response: HttpResponse) -> HttpResponse:
    """The headers of every response (the middleware adds them too), and never cached: agents' data."""
    return security_headers(response, private=True)


def desk_page(view: Callable[..., HttpResponse] | None = None, *, managers_only: bool = False) -> Any:
    """Login required (our login page), an agent profile required, security headers on every answer."""

    def decorate(fn: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(fn)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return secure_headers(redirect_to_login(request.get_full_path(), reverse("workspace-login")))
            if not user_can_work(request.user):
                return secure_headers(HttpResponseForbidden(
                    "Your account has no agent profile, so it cannot use the desk. Ask a manager to add you as an agent."
                ))
            if managers_only and not user_is_manager(request.user):
                return secure_headers(HttpResponseForbidden("Only managers can see this page."))
            return secure_headers(fn(request, *args, **kwargs))

        return wrapper

    return decorate(view) if view is not None else decorate
