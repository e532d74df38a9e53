"""Bits every API view shares."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework.exceptions import NotFound


class ScopedObjectMixin:
    """A missing row and a row the user may not see give the same 404, so existence never leaks."""

    noun = "object"

    def get_object(self) -> Any:
        try:
            return super().get_object()  # type: ignore[misc]
        except Http404:
            raise self.not_found() from None

    def not_found(self) -> NotFound:
        lookup = self.lookup_url_kwarg or self.lookup_field  # type: ignore[attr-defined]
        value = self.kwargs.get(lookup, "")  # type: ignore[attr-defined]
        return NotFound(f"no {self.noun} {value!s:.80} that you can see")
