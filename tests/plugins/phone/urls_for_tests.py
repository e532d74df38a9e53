"""The project's URLs plus the call-import route (until omnidesk/api/urls.py lists it)."""

from django.urls import include, path

from omnidesk.api.calls import CallImportView

urlpatterns = [
    path("api/v1/channel-accounts/<slug:slug>/calls/import/", CallImportView.as_view(), name="channel-account-calls-import"),
    path("", include("config.urls")),
]
