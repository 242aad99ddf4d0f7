"""Threads for the database work of calls: setting them up, and what they write.

``channels.db.database_sync_to_async`` runs every piece of a process's database work on
one thread, one at a time, and opens and closes a database connection around each: a
burst of callers would be authenticated and counted against their tenant's cap one after
another, each behind every live call's transcript writes, and each set-up, flush and end
would pay for a new PostgreSQL connection (a server process forked for it).

Calls' database work goes to these threads instead (``KOE_CALL_DB_THREADS`` of them; 0
keeps it on Channels' thread, as on SQLite, which writes one at a time anyway). Each
thread keeps its connection: checked before each use (``CONN_HEALTH_CHECKS``) and closed
after work that failed on it, so a database that restarts or goes away costs no more
than the work attempted while it is away (callers refused, writes retried as before).
The guarantees do not depend on the thread: the tenant's cap is checked under a row lock
in the database, a session token is claimed by a conditional update, and one call's
writes are ordered by the call itself (``CallKeeping``).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import SyncToAsync
from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections

P = ParamSpec("P")
T = TypeVar("T")

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _threads() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=settings.KOE_CALL_DB_THREADS, thread_name_prefix="koe-calls-db"
            )
        return _executor


def _keep_healthy_connections() -> None:
    """This thread's connections stay open (never obsolete by age), unless unusable: one
    whose work failed and that no longer answers, or left outside autocommit."""
    for connection in connections.all(initialized_only=True):
        connection.close_at = None
        connection.close_if_unusable_or_obsolete()


class _CallWork(SyncToAsync):  # type: ignore[type-arg]
    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        _keep_healthy_connections()
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            _keep_healthy_connections()


def stop() -> None:
    """Close every thread's connection, and the threads (a test run ending)."""
    global _executor
    with _lock:
        executor, _executor = _executor, None
    if executor is None:
        return
    # One closing task per thread: each waits for the others, so no thread takes two.
    everyone = threading.Barrier(executor._max_workers)

    def close() -> None:
        everyone.wait(timeout=10)
        connections.close_all()

    for closing in [executor.submit(close) for _ in range(executor._max_workers)]:
        closing.result()
    executor.shutdown()


def on_call_threads(function: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """``function`` (blocking, database work) as a coroutine run on the calls' threads."""
    if settings.KOE_CALL_DB_THREADS < 1:
        shared: Callable[P, Awaitable[T]] = database_sync_to_async(function)
        return shared
    work: Callable[P, Awaitable[T]] = _CallWork(
        function, thread_sensitive=False, executor=_threads()
    )
    return work
