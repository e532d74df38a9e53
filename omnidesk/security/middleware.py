"""Login pages answer 429 with Retry-After while the username + address is locked out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

from .throttle import login_lockout

#: URL names of every view that takes a password (tests/security checks the URLconf against it)
LOGIN_VIEWS = frozenset({"workspace-login", "admin:login"})


class LoginThrottleMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view: Any, args: Any, kwargs: Any) -> HttpResponse | None:
        match = request.resolver_match
        if request.method != "POST" or match is None or match.view_name not in LOGIN_VIEWS:
            return None
        wait = login_lockout(request=request, username=request.POST.get("username", ""))
        if not wait:
            return None
        minutes = max(1, round(wait / 60))
        body = render_to_string("security/too_many_logins.html", {"minutes": minutes, "again": request.path})
        response = HttpResponse(body, status=429)
        response["Retry-After"] = str(wait)
        return response
