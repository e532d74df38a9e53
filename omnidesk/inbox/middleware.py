"""A database outage answers 503 with Retry-After, never a 500 and never a 2xx for unstored input."""

import logging

from django.db import InterfaceError, OperationalError
from django.http import JsonResponse

log = logging.getLogger(__name__)


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):  # type: ignore[no-untyped-def]
        self.get_response = get_response

    def __call__(self, request):  # type: ignore[no-untyped-def]
        return self.get_response(request)

    def process_exception(self, request, exception):  # type: ignore[no-untyped-def]
        if isinstance(exception, (OperationalError, InterfaceError)):
            log.error("database unavailable for %s %s: %s", request.method, request.path, exception)
            response = JsonResponse(
                {"error": "database_unavailable", "detail": "The database is unavailable; nothing was stored. Retry later."},
                status=503,
            )
            response["Retry-After"] = "5"
            return response
        return None
