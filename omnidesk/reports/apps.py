from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "omnidesk.reports"
    label = "reports"
