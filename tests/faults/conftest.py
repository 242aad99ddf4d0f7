"""Fixtures for the fault drills: the real Redis and PostgreSQL behind proxies a test can
cut, Koe's server pointed at them, and the fake OpenAI upstream."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import redis

from tests.faults.network import TcpProxy
from tests.realtime.conftest import openai_agent, scripted_provider

__all__ = ["openai_agent", "scripted_provider"]

# A Redis database of its own: a drill "restarts" Redis by emptying it.
DRILL_REDIS_DB = 9


@dataclass
class DrillRedis:
    proxy: TcpProxy
    prefix: str  # the channel layer's prefix for this drill

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.proxy.port}/{DRILL_REDIS_DB}"

    def restart(self) -> None:
        """What a Redis restart does to its clients: connections reset, every key gone
        (Koe's Redis keeps nothing on disk)."""
        self.proxy.cut()
        _direct().flushdb()

    def back(self) -> None:
        self.proxy.restore()


def _direct() -> redis.Redis:
    parts = urlsplit(os.environ["REDIS_URL"])
    return redis.Redis(
        host=parts.hostname or "127.0.0.1", port=parts.port or 6379, db=DRILL_REDIS_DB
    )


@pytest.fixture
def drill_redis() -> Iterator[DrillRedis]:
    parts = urlsplit(os.environ["REDIS_URL"])
    _direct().flushdb()
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379) as proxy:
        yield DrillRedis(proxy=proxy, prefix=f"drill-{uuid.uuid4().hex[:8]}")
    _direct().flushdb()


@pytest.fixture
def database_proxy() -> Iterator[TcpProxy]:
    """PostgreSQL (the test database's server) behind a proxy a drill can cut."""
    from django.db import connection

    settings_dict = connection.settings_dict
    with TcpProxy(
        settings_dict["HOST"] or "127.0.0.1", int(settings_dict["PORT"] or 5432)
    ) as proxy:
        yield proxy


def proxied_database_url(proxy: TcpProxy) -> str:
    """The test database, reached through ``proxy``."""
    from tests.live import test_database_url

    parts = urlsplit(test_database_url())
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0] + "@" if len(netloc) == 2 else ""
    return parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}").geturl()
