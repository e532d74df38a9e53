from django.apps import AppConfig


class SecurityConfig(AppConfig):
    name = "omnidesk.security"
    label = "security"

    def ready(self) -> None:
        from . import throttle

        throttle.connect_signals()
