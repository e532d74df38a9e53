"""The model backend, refusing credentials while their username + address is locked out."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from .throttle import login_lockout


class ThrottledModelBackend(ModelBackend):
    """Even a correct password is refused during a lockout, whichever view called authenticate()."""

    def authenticate(self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any) -> Any:
        if request is not None and username is not None and login_lockout(request=request, username=username):
            raise PermissionDenied("too many failed sign-ins")  # authenticate() stops here and reports a failure
        return super().authenticate(request, username=username, password=password, **kwargs)
