from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "omnidesk.incidents"
    label = "incidents"
    verbose_name = "Incidents"
