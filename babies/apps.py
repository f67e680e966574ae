from django.apps import AppConfig


class BabiesConfig(AppConfig):
    name = "babies"
    verbose_name = "Babies and scans"
