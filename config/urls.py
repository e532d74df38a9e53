from django.contrib import admin
from django.urls import include, path

from omnidesk.inbox.views import webhook

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("omnidesk.api.urls")),
    path("hooks/<slug:slug>/", webhook, name="webhook"),
    path("reports/", include("omnidesk.reports.urls")),
    path("", include("omnidesk.workspace.urls")),
]
