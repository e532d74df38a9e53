from django.urls import path

from . import views

app_name = "reports"
urlpatterns = [path("parity/", views.parity_page, name="parity")]
