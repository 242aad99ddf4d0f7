from django.apps import AppConfig
from django.core import checks


class FoundationConfig(AppConfig):
    name = "foundation"
    verbose_name = "Koe foundation"

    def ready(self) -> None:
        from foundation.checks import encryption_keys_check

        checks.register(encryption_keys_check, checks.Tags.security)
