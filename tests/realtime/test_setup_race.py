"""Bursts of callers set up at once, through Koe's server.

Set-up runs on several threads on PostgreSQL (KOE_CALL_DB_THREADS), each with its own
connection: the guarantees must hold under races. Against a small cap, exactly the cap's
number of callers get ``session.created`` and every other one is refused with
``concurrent_call_limit``, leaving no call behind; a session token presented by many
callers at once lets exactly one in."""

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
from tests.realtime.helpers import session_token

pytestmark = pytest.mark.django_db(transaction=True)

UPSTREAM_KEY = "sk-test-upstream"
CAP = 3
CALLERS = 16


async def _burst(url: str, secret: str) -> list[dict[str, Any]]:
    """Every caller's first event; the admitted ones hang up once all have one."""
    everyone_answered = asyncio.Event()
    firsts: list[dict[str, Any]] = []

    async def caller() -> None:
        headers = {"Authorization": f"Bearer {secret}"}
        async with connect(url, additional_headers=headers, open_timeout=30) as ws:
            firsts.append(json.loads(await ws.recv()))
            if len(firsts) == CALLERS:
                everyone_answered.set()
            await everyone_answered.wait()

    await asyncio.wait_for(asyncio.gather(*(caller() for _ in range(CALLERS))), 60)
    return firsts


def _firsts(agent: Agent, secret: str, threads: str) -> list[dict[str, Any]]:
    fake = FakeRealtimeServer(expected_key=UPSTREAM_KEY).start_in_thread()
    try:
        with daphne_server(
            KOE_OPENAI_REALTIME_URL=fake.url,
            OPENAI_API_KEY=UPSTREAM_KEY,
            KOE_CALL_DB_THREADS=threads,
        ) as base:
            url = f"{base.replace('http', 'ws', 1)}/v1/realtime?model={agent.public_id}"
            return asyncio.run(_burst(url, secret))
    finally:
        fake.stop()


# Set-up threads are for PostgreSQL; SQLite sets calls up on Channels' one thread.
THREADS = ["0", pytest.param("4", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("threads", THREADS)
def test_a_burst_of_callers_gets_exactly_the_tenants_cap(
    tenant_a: TenantWorld, openai_agent: Agent, threads: str
) -> None:
    tenant_a.tenant.max_concurrent_calls = CAP
    tenant_a.tenant.save(update_fields=["max_concurrent_calls"])
    firsts = _firsts(openai_agent, tenant_a.secret, threads)
    admitted = [event for event in firsts if event["type"] == "session.created"]
    refused = [event["error"]["code"] for event in firsts if event["type"] == "error"]
    assert len(admitted) == CAP
    assert refused == ["concurrent_call_limit"] * (CALLERS - CAP)
    assert CallSession.objects.filter(tenant=tenant_a.tenant).count() == CAP


@pytest.mark.parametrize("threads", THREADS)
def test_a_session_token_presented_by_many_at_once_lets_one_in(
    tenant_a: TenantWorld, openai_agent: Agent, threads: str
) -> None:
    token = session_token(tenant_a.secret, openai_agent.public_id)
    firsts = _firsts(openai_agent, token, threads)  # ek_ tokens also go as Bearer
    assert [event["type"] for event in firsts].count("session.created") == 1
    refused = sorted(event["error"]["code"] for event in firsts if event["type"] == "error")
    assert refused == ["session_token_used"] * (CALLERS - 1)
    assert CallSession.objects.filter(tenant=tenant_a.tenant).count() == 1
