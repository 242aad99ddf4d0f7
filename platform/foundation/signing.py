"""Signatures on what Koe sends to tenants (tool webhooks, events), Stripe-style.

The header ``Koe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`` signs
``f"{t}.{body}"`` with the secret shown to the tenant. A receiver recomputes it, compares
in constant time, and refuses old timestamps so a captured request cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "Koe-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The signature is missing, malformed, wrong or too old."""


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The Koe-Signature header value for ``body``."""
    moment = int(time.time()) if timestamp is None else timestamp
    digest = _digest(secret, moment, body)
    return f"t={moment},v1={digest}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,  # pragma: no mutate  (keyword-only or not, every caller names them)
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise SignatureError unless ``header`` signs ``body`` with ``secret``, recently."""
    parts: dict[str, list[str]] = {}
    for piece in (header or "").split(","):
        key, _, value = piece.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        moment = int(parts["t"][0])
    except (KeyError, ValueError):
        raise SignatureError("The signature has no timestamp.") from None
    expected = _digest(secret, moment, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in parts.get("v1", [])):
        raise SignatureError("The signature does not match the body.")
    current = time.time() if now is None else now
    if abs(current - moment) > tolerance_seconds:
        raise SignatureError("The signature is too old (or from the future).")


def _digest(secret: str, moment: int, body: bytes) -> str:
    message = str(moment).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
