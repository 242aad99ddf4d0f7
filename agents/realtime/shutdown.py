"""Ending live calls when the server process stops, so their end and last words are kept.

Daphne stops its reactor without waiting for WebSocket applications to finish (a live
call's consumer was simply dropped, and the interpreter then crashed finalising its
coroutines). Under Daphne, Koe adds a "before shutdown" trigger that ends every live
call on this process, recording it, before the reactor goes.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any, Protocol

logger = logging.getLogger("koe.realtime")


class Endable(Protocol):
    ended: bool

    async def end_for_shutdown(self) -> None: ...


_live: weakref.WeakSet[Any] = weakref.WeakSet()
_installed = False


def track(consumer: Endable) -> None:
    _live.add(consumer)
    _install_trigger()


def _install_trigger() -> None:
    global _installed
    if _installed:
        return
    try:
        from twisted.internet import reactor
    except ImportError:  # not under Daphne (e.g. another ASGI server, or tests)
        return
    if not getattr(reactor, "running", False):
        return
    reactor.addSystemEventTrigger("before", "shutdown", _end_live_calls)  # type: ignore[arg-type]
    _installed = True


def _end_live_calls() -> Any:
    """Daphne's "before shutdown" trigger: a Deferred Twisted waits for."""
    if not _still_live():
        return None
    from twisted.internet import defer

    return defer.Deferred.fromFuture(asyncio.ensure_future(end_live_calls()))


async def end_live_calls() -> None:
    """End every live call on this process as ``server_shutdown``, recorded; one failing
    stops none of the others. (Other servers than Daphne call it as they shut down.)"""
    calls = _still_live()
    if calls:
        logger.info("server shutting down: ending %d live call(s)", len(calls))
        await asyncio.gather(*(call.end_for_shutdown() for call in calls), return_exceptions=True)


def _still_live() -> list[Any]:
    return [consumer for consumer in list(_live) if not consumer.ended]
