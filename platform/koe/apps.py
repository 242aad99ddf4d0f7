from django.apps import AppConfig
from django.core import checks


class KoeConfig(AppConfig):
    name = "koe"
    verbose_name = "Koe platform"

    def ready(self) -> None:
        from koe.checks import encryption_keys_check

        checks.register(encryption_keys_check, checks.Tags.security)
