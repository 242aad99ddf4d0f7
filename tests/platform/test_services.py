"""The real Redis behind the channel layer and the cache (CI runs these; they skip elsewhere)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from channels.layers import get_channel_layer
from django.core.cache import cache, caches
from django.db import connection


@pytest.mark.redis
def test_channel_layer_group_message_crosses_redis() -> None:
    async def round_trip() -> dict[str, str]:
        layer = get_channel_layer()
        assert type(layer).__name__ == "RedisChannelLayer"
        channel = await layer.new_channel()
        group = f"test.{uuid.uuid4().hex}"
        await layer.group_add(group, channel)
        await layer.group_send(group, {"type": "call.end", "reason": "operator"})
        message = await asyncio.wait_for(layer.receive(channel), timeout=5)
        await layer.group_discard(group, channel)
        return message

    assert asyncio.run(round_trip()) == {"type": "call.end", "reason": "operator"}


@pytest.mark.redis
def test_cache_is_redis() -> None:
    key = f"test:{uuid.uuid4().hex}"
    cache.set(key, {"calls": 3}, timeout=30)
    assert cache.get(key) == {"calls": 3}
    assert type(caches["default"]).__name__ == "RedisCache"
    cache.delete(key)


@pytest.mark.postgres
@pytest.mark.django_db
def test_database_is_postgresql() -> None:
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        assert int(cursor.fetchone()[0].split(".")[0]) >= 13
