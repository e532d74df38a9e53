from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "omnidesk.routing"
    label = "routing"
