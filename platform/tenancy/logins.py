"""Log-in lockout: django-axes counts failed log-ins per account and per client address.

The limits, the cool-off and the client address (behind KOE_TRUSTED_PROXIES) are set in
koe/settings.py; this module holds what Koe adds to axes.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.utils import reset
from django.http import HttpRequest


class LockoutBackend(AxesStandaloneBackend):
    """Axes' check of a client's log-in, first of the authentication backends.

    ``authenticate()`` without a request (a management command or a script checking a
    password) is no client's log-in: axes would refuse it with an error, so it passes here
    to the password check alone. Every log-in page passes its request.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is not None:
            super().authenticate(request, username, password, **kwargs)


def lift_account_lockout(username: str) -> None:
    """Forget an account's failed log-ins, from wherever they came.

    Other accounts' failures stay, so an address that also tried them may stay locked out.
    """
    reset(username=username)
