"""Opaque, prefixed identifiers shown to users (never sequential database ids)."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_lowercase + string.digits


def random_token(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def public_id(prefix: str, length: int = 20) -> str:
    return f"{prefix}_{random_token(length)}"
