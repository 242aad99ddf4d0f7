"""Which serving processes are alive, and the end of the calls of those that are not.

Each process that serves calls (``python -m koe.server``) records every
KOE_HEARTBEAT_SECONDS that it is alive (a ServerInstance row). A process killed outright
(SIGKILL, a lost machine, the OOM killer) ends nothing: its calls stay active. Once it has
been silent for KOE_INSTANCE_LOST_SECONDS its calls no longer count against their
tenant's cap, and ``end_lost_calls`` ends them as ``server_lost``, with the duration they
had when the process was last known alive. Every living server process runs it as it
beats, and Celery beat every minute, so a lost call is ended within a minute.

The instance name carries a random part: a restarted process (same host, same pid in a
container) is a new instance, and its predecessor's calls are still found lost.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import datetime, timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from calls import spool
from calls.ledger import end_call
from calls.models import CallSession, CallStatus, EndReason, ServerInstance

logger = logging.getLogger("koe.liveness")

# This process, this start.
INSTANCE = f"{settings.KOE_INSTANCE_NAME}~{secrets.token_hex(3)}"
# Rows of instances lost this long ago, with no call left, are deleted.
FORGET_AFTER = timedelta(days=1)


def beat(instance: str = INSTANCE, now: datetime | None = None) -> None:
    now = now or timezone.now()
    updated = ServerInstance.objects.filter(name=instance).update(last_seen_at=now)
    if not updated:
        ServerInstance.objects.get_or_create(
            name=instance, defaults={"started_at": now, "last_seen_at": now}
        )


def lost_since(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(seconds=settings.KOE_INSTANCE_LOST_SECONDS)


def lost_instances(now: datetime | None = None) -> QuerySet[ServerInstance]:
    return ServerInstance.objects.filter(last_seen_at__lt=lost_since(now))


def held_by_lost_instance(now: datetime | None = None) -> Q:
    """Calls whose process has stopped beating (for the cap and the dashboard)."""
    return Q(server_instance__in=lost_instances(now).values("name"))


def end_lost_calls(now: datetime | None = None) -> int:
    """End the active calls of every lost instance; returns how many were ended."""
    now = now or timezone.now()
    ended = 0
    for instance in lost_instances(now):
        calls = CallSession.objects.filter(status=CallStatus.ACTIVE, server_instance=instance.name)
        for call_id in calls.values_list("pk", flat=True):
            end_call(
                call_id,
                EndReason.SERVER_LOST,
                f"The process holding the call ({instance.name}) stopped without ending it.",
                ended_at=instance.last_seen_at,
            )
            ended += 1
    forgotten = ServerInstance.objects.filter(last_seen_at__lt=now - FORGET_AFTER).exclude(
        name__in=CallSession.objects.filter(status=CallStatus.ACTIVE).values("server_instance")
    )
    forgotten.delete()
    if ended:
        logger.warning("ended %d call(s) of lost server processes", ended)
    return ended


async def keep_beating() -> None:
    """This process's heartbeat, the sweep of other processes' lost calls and the writing
    of spooled call ends (calls.spool), until the loop stops. An outage is waited out."""
    every = settings.KOE_HEARTBEAT_SECONDS
    while True:
        try:
            await database_sync_to_async(beat)()
            await database_sync_to_async(end_lost_calls)()
            await database_sync_to_async(spool.replay)(INSTANCE)
        except Exception as error:
            logger.warning("heartbeat failed (%r); trying again in %.0f s", error, every)
        await asyncio.sleep(every)


_beating: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}


def ensure_beating(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Start the heartbeat on ``loop`` (the running one by default), once."""
    loop = loop or asyncio.get_running_loop()
    task = _beating.get(loop)
    if task is None or task.done():
        for other in [key for key in _beating if key.is_closed()]:
            del _beating[other]
        _beating[loop] = loop.create_task(keep_beating(), name="koe-heartbeat")
