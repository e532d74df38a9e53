from django.apps import AppConfig


class TicketsConfig(AppConfig):
    name = "omnidesk.tickets"
    label = "tickets"
