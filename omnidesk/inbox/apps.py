from django.apps import AppConfig


class InboxConfig(AppConfig):
    name = "omnidesk.inbox"
    label = "inbox"
