"""Configuration that Koe checks when it starts, so a bad value stops start-up, not a request.

``koe.settings`` calls these as it loads; ``KoeConfig.ready()`` also registers them as
system checks, for settings modules that change the values after ``koe.settings`` ran.
Light imports only: this module is imported while settings load.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MAKE_A_KEY = (
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


def fernet_key_problem(keys: Sequence[str], setting: str = "FIELD_ENCRYPTION_KEYS") -> str:
    """What is wrong with a list of Fernet keys ("" when nothing is), naming keys by position.

    A key is never quoted: the message goes to logs and error pages.
    """
    if isinstance(keys, str) or not keys:
        return f"{setting} must be a non-empty list of Fernet keys (make one with: {MAKE_A_KEY})."
    bad = []
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode() if isinstance(key, str) else key)
        except (TypeError, ValueError):
            bad.append(str(position))
    if not bad:
        return ""
    if len(bad) == 1:
        which = f"key {bad[0]} is not a Fernet key"
    else:
        which = f"keys {', '.join(bad)} are not Fernet keys"
    return (
        f"{setting}: {which} (of {len(keys)}, counting from 1; a Fernet key is url-safe "
        f"base64 of 32 bytes; make one with: {MAKE_A_KEY})."
    )


def check_fernet_keys(keys: Sequence[str], setting: str = "FIELD_ENCRYPTION_KEYS") -> None:
    """Raise ImproperlyConfigured unless every key is a Fernet key."""
    problem = fernet_key_problem(keys, setting)
    if problem:
        raise ImproperlyConfigured(problem)


def encryption_keys_check(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """System check: FIELD_ENCRYPTION_KEYS as Django ended up with them."""
    from django.core import checks  # not at the top: settings import this module

    problem = fernet_key_problem(getattr(settings, "FIELD_ENCRYPTION_KEYS", []))
    return [checks.Error(problem, id="koe.E001")] if problem else []
