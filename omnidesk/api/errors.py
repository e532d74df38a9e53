"""Every API error is JSON a person understands: {"error": code, "detail": message}."""

from __future__ import annotations

from typing import Any

from django.db import InterfaceError, OperationalError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from omnidesk.plugins.errors import PluginError, RetryableSendError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
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
    if isinstance(data, dict) and set(data) == {"detail"}:
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
