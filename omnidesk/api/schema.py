"""The OpenAPI schema tells the whole truth: every operation lists the errors it can answer.

drf-spectacular documents only the success response unless each view says more; but every
authenticated endpoint can answer 401 and 403, every endpoint with an id in its path 404, every
request with a body 400, and any endpoint 503 while the database is down (errors.py). Clients
generated from the schema, and the schema fuzzing in tests/fuzz, rely on those being listed.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse

from .serializers import ErrorSerializer

_COMMON = {
    "401": "not authenticated: send `Authorization: Token <key>` or log in",
    "403": "authenticated, but not allowed (no agent profile, or not a manager)",
    "404": "no such object among those you can see",
    "400": "the request is invalid; `fields` says which field and why",
    "415": "the Content-Type is not one this operation reads",
    "503": "the database (or the channel's service) is unavailable; retry after `Retry-After` seconds",
}


class AutoSchema(SpectacularAutoSchema):
    def _get_response_bodies(self, direction: Any = "response") -> Any:
        responses = super()._get_response_bodies(direction)
        for code in self._error_codes():
            if code not in responses:
                error = OpenApiResponse(ErrorSerializer, description=_COMMON[code])
                responses[code] = self._get_response_for_code(error, code, direction=direction)
        return responses

    def _error_codes(self) -> list[str]:
        codes = ["503"]
        if self.get_auth():
            codes += ["401", "403"]
        if "{" in self.path:
            codes.append("404")
        if self.method in ("POST", "PUT", "PATCH"):
            codes += ["400", "415"]
        return codes
