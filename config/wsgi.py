"""WSGI entry point (uvicorn --interface wsgi, the bench's and deploy.md's webhook service): every URL.

Webhooks go through the configured middleware minus the ones that do nothing for a signed,
CSRF-exempt, cookie-less POST (sessions, CSRF, users, login throttling, flash messages, the
X-Frame-Options default the security headers already set): about a seventh of a webhook's CPU
(docs/benchmarks.md). Every other middleware, one added later included, runs for them as for pages.
"""

import os

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

#: the URL prefix of the webhooks (config/urls.py)
HOOKS_PREFIX = "/hooks/"
#: middleware a webhook never needs: the view is csrf_exempt, reads no session, user or message, and
#: omnidesk.security.headers sets X-Frame-Options on every response
NOT_FOR_HOOKS = frozenset({
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "omnidesk.security.middleware.LoginThrottleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
})


class HooksHandler(WSGIHandler):
    """Django's WSGI handler with the middleware of settings.MIDDLEWARE that webhooks need."""

    def load_middleware(self, is_async: bool = False) -> None:
        configured = settings.MIDDLEWARE
        settings.MIDDLEWARE = [path for path in configured if path not in NOT_FOR_HOOKS]
        try:  # BaseHandler reads the setting; set for the time it takes (at start-up, one thread)
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = configured


pages = WSGIHandler()
hooks = HooksHandler()


def application(environ, start_response):  # type: ignore[no-untyped-def]
    handler = hooks if environ.get("PATH_INFO", "").startswith(HOOKS_PREFIX) else pages
    return handler(environ, start_response)


from config.startup import load_and_freeze  # noqa: E402

load_and_freeze()
