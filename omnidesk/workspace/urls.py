from django.conf import settings
from django.urls import path

from . import views

urlpatterns = [path("", views.home, name="home")]

if settings.DEBUG:
    urlpatterns.append(path("demo/callback/", views.demo_callback, name="demo-callback"))
