from django.apps import AppConfig


class WorkspaceConfig(AppConfig):
    name = "omnidesk.workspace"
    label = "workspace"
