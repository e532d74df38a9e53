from django.apps import AppConfig


class PluginsConfig(AppConfig):
    name = "omnidesk.plugins"
    label = "plugins"
    verbose_name = "Channels"
