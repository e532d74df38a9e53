"""The security headers every response carries (pages, API, webhooks, errors)."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse

#: Scripts and styles only from our own static files: an injected <script>, on*= attribute or
#: style="" never applies. Images from us or data: URLs only, so a remote image in customer HTML
#: (a tracking pixel) is never fetched by an agent's browser.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
#: powerful browser features no omnidesk page uses
PERMISSIONS_POLICY = (
    "accelerometer=(), autoplay=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), "
    "magnetometer=(), microphone=(), midi=(), payment=(), usb=()"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Permissions-Policy": PERMISSIONS_POLICY,
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def security_headers(response: HttpResponse, *, private: bool = False) -> HttpResponse:
    """Add the headers a view did not set itself; `private`: the answer must never be cached."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if private:
        response.headers.setdefault("Cache-Control", "no-store")
    return response


class SecurityHeadersMiddleware:
    """Every response gets the headers; answers to a signed-in user are not cacheable."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return security_headers(self.get_response(request), private=_signed_in(request))


def _signed_in(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    try:
        return bool(user is not None and user.is_authenticated)
    except DatabaseError:  # the session store is down (a 503 on its way out): answer it, uncached
        return True


class StaticFilesWithHeaders(ASGIStaticFilesHandler):
    """The apps' static files as the ASGI app serves them, with the same headers as every page.

    Static answers never pass through the middleware; without this a script or stylesheet went
    out without nosniff or a CSP."""

    async def get_response_async(self, request: HttpRequest) -> HttpResponse:
        return security_headers(await super().get_response_async(request))
