"""Every API error is JSON a person understands: {"error": code, "detail": message}."""

from __future__ import annotations

from typing import Any

from django.db import InterfaceError, OperationalError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from omnidesk.plugins.errors import PluginError, RetryableSendError
from omnidesk.plugins.registry import UnknownPlugin
from omnidesk.tickets.replies import PublicReplyHasPII, ReplyConflict, ReplyRefused
from omnidesk.tickets.services import TicketChangeInvalid


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, (PublicReplyHasPII, ReplyConflict)):
        # not the caller's mistake but a question: the same request with a confirmation flag succeeds
        code = "public_pii" if isinstance(exc, PublicReplyHasPII) else "reply_conflict"
        return Response({"error": code, "detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, ReplyRefused):
        return Response({"error": "reply_refused", "detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, TicketChangeInvalid):
        return Response({"error": "invalid_change", "detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, UnknownPlugin):
        # an account of a plugin that was uninstalled: the desk's setup, not the caller, must change
        return Response({"error": "plugin_missing", "detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    if isinstance(exc, PluginError):
        code = status.HTTP_503_SERVICE_UNAVAILABLE if isinstance(exc, RetryableSendError) else status.HTTP_400_BAD_REQUEST
        return Response({"error": exc.code, "detail": exc.message}, status=code)
    if isinstance(exc, (OperationalError, InterfaceError)):
        return Response(
            {"error": "database_unavailable", "detail": "The database is unavailable. Retry later."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    code = getattr(exc, "default_code", "error")
    if isinstance(data, dict) and set(data) == {"detail"} and isinstance(data["detail"], list):
        response.data = {"error": code, "detail": _flatten(data["detail"])}  # several problems, one sentence each
    elif isinstance(data, dict) and set(data) == {"detail"}:
        response.data = {"error": getattr(data["detail"], "code", code), "detail": str(data["detail"])}
    else:
        response.data = {"error": "invalid", "detail": _flatten(data), "fields": data}
    return response


def _flatten(data: Any, prefix: str = "") -> str:
    if isinstance(data, dict):
        return "; ".join(_flatten(v, f"{prefix}{k}: ") for k, v in data.items())
    if isinstance(data, list):
        return "; ".join(_flatten(v, prefix) for v in data)
    return f"{prefix}{data}"
