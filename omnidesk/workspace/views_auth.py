"""Signing in and out of the workspace (any desk staff, not only Django staff)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from .access import secure_headers


@method_decorator(sensitive_post_parameters("password"), name="dispatch")
class LoginView(auth_views.LoginView):
    template_name = "workspace/login.html"
    redirect_authenticated_user = True

    def get_default_redirect_url(self) -> str:
        return reverse("home")

    def dispatch(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        return secure_headers(super().dispatch(request, *args, **kwargs))


class LogoutView(auth_views.LogoutView):
    next_page = "workspace-login"
