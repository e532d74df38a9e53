from django.urls import path

from . import views, views_incidents

app_name = "reports"
urlpatterns = [
    path("parity/", views.parity_page, name="parity"),
    path("incidents/<int:incident_id>/", views_incidents.incident_page, name="incident"),
]
