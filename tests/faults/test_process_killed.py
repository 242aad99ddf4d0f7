"""Drill: the server process is killed outright (SIGKILL) under six live calls.

Nothing in the dead process can end its calls. The next server to start (or any other
living one) finds the process silent and ends them as ``server_lost``, with the duration
they really had; the tenant, whose cap is six, is not locked out meanwhile.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from agents.models import Agent
from calls.models import CallSession, ServerInstance
from tests.conftest import TenantWorld
from tests.e2e.server import restartable_daphne
from tests.fakes.realtime_server import FakeRealtimeServer, Turn
from tests.faults.calls import LiveCall

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

UPSTREAM_KEY = "sk-drill-upstream"
CALLS = 6


def test_the_calls_of_a_killed_server_are_ended_and_the_tenant_is_not_locked_out(
    tenant_a: TenantWorld, openai_agent: Agent
) -> None:
    tenant_a.tenant.max_concurrent_calls = CALLS
    tenant_a.tenant.save(update_fields=["max_concurrent_calls"])
    fake = FakeRealtimeServer(
        [Turn(user="Hello", assistant="Hello there.")] * 1000, expected_key=UPSTREAM_KEY
    ).start_in_thread()
    try:
        with restartable_daphne(
            KOE_OPENAI_REALTIME_URL=fake.url,
            OPENAI_API_KEY=UPSTREAM_KEY,
            KOE_HEARTBEAT_SECONDS="0.5",
            KOE_INSTANCE_LOST_SECONDS="2",
        ) as server:
            url = server.base.replace("http", "ws") + (
                f"/v1/realtime?model={openai_agent.public_id}&consent=transcript"
            )
            callers, killed_at = asyncio.run(_talk_then_kill(url, tenant_a.secret, server.crash))
            first_instance = CallSession.objects.values_list("server_instance", flat=True)[0]
            server.start()  # a new process: a new instance, which sweeps the lost calls
            ended = _all_ended(CALLS, timeout=20)
            # The cap of six counts none of the dead calls: a new call gets through.
            newcomer = asyncio.run(_one_answer(url, tenant_a.secret))
    finally:
        fake.stop()

    assert all(caller.close_code == 1006 for caller in callers)  # the TCP just vanished
    assert newcomer.responses >= 1
    for call in ended:
        assert call.end_reason == "server_lost"
        assert first_instance in call.end_detail
        # The duration it really had: up to the dead process's last heartbeat (0.5 s).
        alive_for = killed_at - call.started_at.timestamp()
        assert alive_for - 1.5 <= call.duration_ms / 1000 <= alive_for + 0.5
    assert ServerInstance.objects.count() == 2


async def _talk_then_kill(url: str, secret: str, crash: object) -> tuple[list[LiveCall], float]:
    stop = asyncio.Event()
    callers = [LiveCall(url, secret) for _ in range(CALLS)]
    talking = [asyncio.create_task(caller.talk(stop)) for caller in callers]
    for caller in callers:
        await caller.wait_for_responses(2)
    killed_at = time.time()
    await asyncio.to_thread(crash)  # type: ignore[arg-type]
    await asyncio.gather(*talking, return_exceptions=True)
    return callers, killed_at


async def _one_answer(url: str, secret: str) -> LiveCall:
    stop = asyncio.Event()
    caller = LiveCall(url, secret)
    talking = asyncio.create_task(caller.talk(stop))
    try:
        await caller.wait_for_responses(1)
    finally:
        stop.set()
        await talking
    return caller


def _all_ended(count: int, timeout: float) -> list[CallSession]:
    deadline = time.monotonic() + timeout
    while True:
        calls = list(CallSession.objects.filter(status="ended").order_by("pk")[:count])
        if len(calls) == count:
            return calls
        assert time.monotonic() < deadline, f"{len(calls)} of {count} lost calls were ended"
        time.sleep(0.1)
