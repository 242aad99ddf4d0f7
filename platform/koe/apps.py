from django.apps import AppConfig


class KoeConfig(AppConfig):
    name = "koe"
    verbose_name = "Koe platform"
