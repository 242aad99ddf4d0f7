"""Typed helpers that read Koe's configuration from environment variables."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from error


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from error


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_ice_servers(name: str) -> list[dict[str, str | list[str]]]:
    """STUN/TURN servers as WebRTC's RTCIceServer list, in JSON:
    ``[{"urls": ["stun:stun.example.org:3478"]}, {"urls": "turn:...", "username": ..,
    "credential": ..}]``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return []
    try:
        servers = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ImproperlyConfigured(f"{name} must be a JSON list of ICE servers") from error
    if not isinstance(servers, list):
        raise ImproperlyConfigured(f"{name} must be a JSON list of ICE servers")
    for server in servers:
        urls = server.get("urls") if isinstance(server, dict) else None
        if not (isinstance(urls, str) or (isinstance(urls, list) and urls)) or not all(
            isinstance(url, str) and url.split(":", 1)[0] in ("stun", "stuns", "turn", "turns")
            for url in ([urls] if isinstance(urls, str) else urls)
        ):
            raise ImproperlyConfigured(f"{name}: each server needs urls of stun: or turn: URIs")
    return servers


def development_secrets(path: Path) -> dict[str, str]:
    """Secrets for the embedded default, generated once into an ignored local file.

    They let a fresh checkout run without configuration while keeping real secrets out
    of the repository; production mode never reads this file.
    """
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
    else:
        stored = {}
    wanted = {
        "SECRET_KEY": lambda: secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEYS": lambda: Fernet.generate_key().decode(),
    }
    changed = False
    for key, make in wanted.items():
        if not stored.get(key):
            stored[key] = make()
            changed = True
    if changed:
        path.write_text(json.dumps(stored, indent=2))
        path.chmod(0o600)
    return stored
