from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "omnidesk.api"
    label = "api"
