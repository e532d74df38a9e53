"""/api/v1/: a browsable root listing every endpoint, the OpenAPI schema, and a JSON 404 for the rest."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import Resolver404, path, re_path, resolve
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from .accounts import ChannelAccountViewSet, ChannelViewSet
from .calls import CallImportView
from .routing import PresenceViewSet, QueueViewSet, RuleViewSet
from .incidents import IncidentViewSet
from .reports import ParityReportViewSet
from .sla import CalendarViewSet, PolicyViewSet
from .views import CustomerViewSet, HealthViewSet, TicketViewSet


class Router(DefaultRouter):
    """DefaultRouter whose root also links the schema."""

    include_format_suffixes = False

    def get_api_root_view(self, api_urls: Any = None) -> Any:
        root = {prefix: self.routes[0].name.format(basename=basename) for prefix, _, basename in self.registry}
        root["schema"] = "schema"
        return self.APIRootView.as_view(api_root_dict=root)


router = Router()
router.register("health", HealthViewSet, basename="health")
router.register("channels", ChannelViewSet, basename="channel")
router.register("channel-accounts", ChannelAccountViewSet, basename="channel-account")
router.register("tickets", TicketViewSet, basename="ticket")
router.register("customers", CustomerViewSet, basename="customer")
router.register("sla/policies", PolicyViewSet, basename="sla-policy")
router.register("sla/calendars", CalendarViewSet, basename="sla-calendar")
router.register("routing/rules", RuleViewSet, basename="routing-rule")
router.register("routing/presence", PresenceViewSet, basename="routing-presence")
router.register("queue", QueueViewSet, basename="queue")
router.register("reports/parity", ParityReportViewSet, basename="report-parity")
router.register("incidents", IncidentViewSet, basename="incident")


@csrf_exempt  # a POST to an unknown path is a 404 in JSON, not the CSRF middleware's HTML 403
def not_found(request: HttpRequest, rest: str) -> JsonResponse:
    """Unknown API paths answer JSON too, with a hint when only the trailing slash is missing."""
    detail = f"there is no API endpoint {request.path}; see /api/v1/ for the list"
    if not request.path.endswith("/"):
        try:
            if resolve(request.path_info + "/").func is not not_found:
                detail = f"add a trailing slash: {request.path}/"
        except Resolver404:
            pass
    return JsonResponse({"error": "not_found", "detail": detail}, status=404)


urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "channel-accounts/<slug:slug>/calls/import/", CallImportView.as_view(), name="channel-account-calls-import"
    ),
    *router.urls,
    re_path(r"^(?P<rest>[\s\S]*)$", not_found),  # any path, even one with a %0A in it
]
