from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "omnidesk.customers"
    label = "customers"
