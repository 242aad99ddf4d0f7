"""A burst of callers set up at once, through Koe's server, against a small cap.

Set-up runs on several threads (KOE_SETUP_THREADS) and, on PostgreSQL, with pooled
connections: the tenant's concurrency cap must still be exact. Exactly the cap's number
of callers get ``session.created``; every other one is refused with
``concurrent_call_limit`` and leaves no call behind."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect

from agents.models import Agent
from calls.models import CallSession
from tests.conftest import TenantWorld
from tests.fakes.realtime_server import FakeRealtimeServer
from tests.live import daphne_server

pytestmark = pytest.mark.django_db(transaction=True)

UPSTREAM_KEY = "sk-test-upstream"
CAP = 3
CALLERS = 16


async def _burst(url: str, secret: str) -> list[dict[str, Any]]:
    """Every caller's first event; the admitted ones hang up once all have one."""
    everyone_answered = asyncio.Event()
    firsts: list[dict[str, Any]] = []

    async def caller() -> None:
        async with connect(url, additional_headers={"Authorization": f"Bearer {secret}"}) as ws:
            firsts.append(json.loads(await ws.recv()))
            if len(firsts) == CALLERS:
                everyone_answered.set()
            await everyone_answered.wait()

    await asyncio.wait_for(asyncio.gather(*(caller() for _ in range(CALLERS))), 60)
    return firsts


# Set-up threads are for PostgreSQL; SQLite sets calls up on Channels' one thread.
@pytest.mark.parametrize("threads", ["0", pytest.param("4", marks=pytest.mark.postgres)])
def test_a_burst_of_callers_gets_exactly_the_tenants_cap(
    tenant_a: TenantWorld, openai_agent: Agent, threads: str
) -> None:
    tenant_a.tenant.max_concurrent_calls = CAP
    tenant_a.tenant.save(update_fields=["max_concurrent_calls"])
    fake = FakeRealtimeServer(expected_key=UPSTREAM_KEY).start_in_thread()
    try:
        with daphne_server(
            KOE_OPENAI_REALTIME_URL=fake.url,
            OPENAI_API_KEY=UPSTREAM_KEY,
            KOE_SETUP_THREADS=threads,
        ) as base:
            url = f"{base.replace('http', 'ws', 1)}/v1/realtime?model={openai_agent.public_id}"
            firsts = asyncio.run(_burst(url, tenant_a.secret))
    finally:
        fake.stop()
    admitted = [event for event in firsts if event["type"] == "session.created"]
    refused = [event["error"]["code"] for event in firsts if event["type"] == "error"]
    assert len(admitted) == CAP
    assert refused == ["concurrent_call_limit"] * (CALLERS - CAP)
    assert CallSession.objects.filter(tenant=tenant_a.tenant).count() == CAP
