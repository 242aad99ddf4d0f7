"""Drill: Redis goes away for three seconds under six live calls, and comes back empty.

Audio never goes through Redis (only control messages do), so the calls carry on as if
nothing happened; once Redis is back they rejoin their groups, so an operator's "end
call" reaches them again. What each caller heard is what the database holds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels_redis.core import RedisChannelLayer

from agents.models import Agent
from calls.models import CallSession
from tests.conftest import TenantWorld
from tests.fakes.realtime_server import FakeRealtimeServer, Turn
from tests.faults.calls import LiveCall
from tests.faults.conftest import DrillRedis
from tests.live import daphne_server

pytestmark = [pytest.mark.faults, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

UPSTREAM_KEY = "sk-drill-upstream"
CALLS = 6
OUTAGE_SECONDS = 3.0


def _ended(count: int, timeout: float = 20) -> list[CallSession]:
    deadline = time.monotonic() + timeout
    while True:
        calls = list(CallSession.objects.filter(status="ended").order_by("pk"))
        if len(calls) == count:
            return calls
        assert time.monotonic() < deadline, f"{len(calls)} of {count} calls recorded as ended"
        time.sleep(0.1)


def test_a_redis_outage_does_not_drop_live_calls(
    tenant_a: TenantWorld, openai_agent: Agent, drill_redis: DrillRedis
) -> None:
    fake = FakeRealtimeServer(
        [Turn(user="Hello", assistant="Hello there.")] * 1000, expected_key=UPSTREAM_KEY
    ).start_in_thread()
    try:
        with daphne_server(
            REDIS_URL=drill_redis.url,
            KOE_CHANNEL_PREFIX=drill_redis.prefix,
            KOE_OPENAI_REALTIME_URL=fake.url,
            OPENAI_API_KEY=UPSTREAM_KEY,
        ) as base:
            url = base.replace("http", "ws") + (
                f"/v1/realtime?model={openai_agent.public_id}&consent=transcript"
            )
            callers = asyncio.run(_drill(url, tenant_a.secret, drill_redis))
            calls = _ended(CALLS)
    finally:
        fake.stop()

    for caller in callers:
        # Heard through the outage, and ended by the operator's message sent after it.
        assert caller.errors() == ["call_ended_operator"], caller.errors()
        assert caller.close_code == 1000
    assert [call.end_reason for call in calls] == ["operator"] * CALLS
    heard = sorted(caller.answers for caller in callers)
    kept = sorted(
        list(call.transcript.filter(role="assistant").values_list("text", flat=True))
        for call in calls
    )
    assert heard == kept  # every answer a caller heard is in its transcript
    assert sorted(c.responses for c in callers) == sorted(c.usage.count() for c in calls)
    for call in calls:
        assert OUTAGE_SECONDS < call.duration_ms / 1000 < 60


async def _drill(url: str, secret: str, drill_redis: DrillRedis) -> list[LiveCall]:
    stop = asyncio.Event()
    callers = [LiveCall(url, secret) for _ in range(CALLS)]
    talking = [asyncio.create_task(caller.talk(stop)) for caller in callers]
    try:
        for caller in callers:
            await caller.wait_for_responses(1)
        ids = await sync_to_async(
            lambda: list(CallSession.objects.values_list("public_id", flat=True))
        )()
        assert len(ids) == CALLS
        before = [caller.responses for caller in callers]
        drill_redis.restart()  # Redis dies: connections reset, and it comes back empty
        await asyncio.sleep(OUTAGE_SECONDS)
        during = [caller.responses for caller in callers]
        drill_redis.back()
        # The calls went on while Redis was away: each heard new answers meanwhile.
        assert all(after > start for start, after in zip(before, during, strict=True))
        assert all(caller.close_code is None for caller in callers)
        await _end_from_the_dashboard(ids, drill_redis, callers)
    finally:
        stop.set()
        await asyncio.gather(*talking, return_exceptions=True)
    return callers


async def _end_from_the_dashboard(
    ids: list[str], drill_redis: DrillRedis, callers: list[LiveCall]
) -> None:
    """Send "end call" to each call's group until every call has it: a call reached only
    once it has rejoined its group on the restarted Redis."""
    layer = RedisChannelLayer(hosts=[{"address": drill_redis.url}], prefix=drill_redis.prefix)
    message: dict[str, Any] = {"type": "call.end", "reason": "operator", "detail": "drill"}
    async with asyncio.timeout(20):
        while not all(caller.close_code is not None for caller in callers):
            for public_id in ids:
                await layer.group_send(f"call.{public_id}", message)
            await asyncio.sleep(0.25)
    await layer.close_pools()
