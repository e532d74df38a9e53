from django.apps import AppConfig


class SlaConfig(AppConfig):
    name = "omnidesk.sla"
    label = "sla"
