"""The call set-up threads keep their PostgreSQL connection, and replace a dead one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from foundation import call_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid: int = cursor.fetchone()[0]
    return pid


@pytest.fixture
def one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    call_threads.stop()
    monkeypatch.setattr(call_threads, "_executor", ThreadPoolExecutor(1))
    yield
    call_threads.stop()


def test_a_setup_thread_keeps_its_connection_and_replaces_one_the_server_ended(
    one_thread: None,
) -> None:
    backend = call_threads.on_call_threads(_backend_pid)
    first = asyncio.run(backend())
    assert asyncio.run(backend()) == first  # no new connection (a server process) per call
    with connection.cursor() as cursor:  # PostgreSQL restarts, or an idle timeout ends it
        cursor.execute("SELECT pg_terminate_backend(%s)", [first])
    replaced = asyncio.run(backend())  # checked before use: no caller is refused for it
    assert replaced != first
    assert asyncio.run(backend()) == replaced
