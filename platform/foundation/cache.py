"""One cache client per process, for what every call reads.

``django.core.cache.cache`` is context-local: under Channels every call (every
connection's task) gets a cache object of its own, and with Redis a connection of its
own, opened on its first read and left for the garbage collector. What calls read on
their hot path (the tenant's budget at set-up and every few seconds) goes through one
client per process instead, whose Redis connection pool is thread-safe and shared.
Local-memory caches with the same LOCATION share their storage, so on the embedded
default both see the same entries.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache import BaseCache, caches
from django.core.signals import setting_changed
from django.dispatch import receiver

_lock = threading.Lock()
_clients: dict[str, BaseCache] = {}


def process_cache(alias: str = "default") -> BaseCache:
    """The process's own client for the cache ``alias``."""
    client = _clients.get(alias)
    if client is None:
        with _lock:
            client = _clients.get(alias) or caches.create_connection(alias)
            _clients[alias] = client
    return client


@receiver(setting_changed)
def _forget_clients(setting: str, **kwargs: Any) -> None:
    if setting == "CACHES":  # tests that change the cache get a client for the new one
        _clients.clear()
