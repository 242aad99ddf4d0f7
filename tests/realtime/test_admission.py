"""Admission by load (calls.load): a process past its limits refuses new calls with 4013
and says so on /readyz, while the calls it holds go on; it takes calls again once it can.

The drain after SIGTERM, under the real server, is tests/realtime/test_drain.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import AsyncClient, Client

from agents.models import Agent
from agents.realtime.errors import CLOSE_TRY_AGAIN
from calls.load import LAG_WINDOW, LOAD, ProcessLoad, watch_loop_lag
from calls.models import CallSession
from tests.conftest import TenantWorld
from tests.realtime.conftest import auth_headers
from tests.realtime.doubles import ScriptedProvider
from tests.realtime.helpers import connect, eventually, receive, refused

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_load() -> Iterator[ProcessLoad]:
    """This process's load starts empty, and is left as it was found."""
    saved = (LOAD.calls, LOAD.units, LOAD.draining, list(LOAD._lags))
    LOAD.calls, LOAD.units, LOAD.draining = 0, 0, False
    LOAD._lags.clear()
    yield LOAD
    LOAD.calls, LOAD.units, LOAD.draining = saved[0], saved[1], saved[2]
    LOAD._lags.clear()
    LOAD._lags.extend(saved[3])


async def readiness() -> tuple[int, dict[str, Any]]:
    response = await AsyncClient().get("/readyz")
    return response.status_code, response.json()


def path(agent: Agent) -> str:
    return f"/v1/realtime?model={agent.public_id}"


def test_at_its_call_limit_a_process_refuses_the_next_call_until_one_ends(
    tenant_a: TenantWorld,
    openai_agent: Agent,
    scripted_provider: type[ScriptedProvider],
    settings: Any,
) -> None:
    settings.KOE_MAX_CALLS_PER_PROCESS = 1
    headers = auth_headers(tenant_a.secret)

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {"ready_before": await readiness()}
        first = await connect(path(openai_agent), headers)
        assert (await receive(first))["type"] == "session.created"
        seen["ready_full"] = await readiness()

        second = await connect(path(openai_agent), headers)
        seen["refusal"] = await refused(second)

        # The call already here is untouched: it is still served (a malformed event is
        # answered, and the call goes on).
        await first.send_json_to({"type": "no.such.event", "event_id": "e1"})
        seen["first_still_served"] = await receive(first)

        await first.disconnect()
        await eventually(lambda: LOAD.calls == 0)
        seen["ready_after"] = await readiness()
        third = await connect(path(openai_agent), headers)
        seen["third"] = await receive(third)
        await third.disconnect()
        return seen

    seen = asyncio.run(scenario())
    assert seen["ready_before"] == (
        200,
        {
            "status": "ready",
            "calls": 0,
            "call_units": 0,
            "max_calls": 1,
            "loop_lag_ms": 0.0,
            "draining": False,
        },
    )
    status, body = seen["ready_full"]
    assert (status, body["status"], body["reason"], body["calls"]) == (
        503,
        "not_ready",
        "server_busy",
        1,
    )
    event, code = seen["refusal"]
    assert code == CLOSE_TRY_AGAIN
    assert event["type"] == "error"
    assert event["error"]["code"] == "server_busy"
    assert "try again" in event["error"]["message"]
    assert seen["first_still_served"]["type"] == "error"
    assert seen["first_still_served"]["error"]["event_id"] == "e1"
    assert seen["ready_after"][0] == 200
    assert seen["third"]["type"] == "session.created"
    # The refused caller cost nothing: no call row, no provider session.
    assert CallSession.objects.count() == 2
    assert len(scripted_provider.connections) == 2


def test_a_caller_refused_for_another_reason_gives_its_slot_back(
    tenant_a: TenantWorld, openai_agent: Agent, settings: Any
) -> None:
    settings.KOE_MAX_CALLS_PER_PROCESS = 1

    async def scenario() -> tuple[dict[str, Any], int]:
        stranger = await connect(path(openai_agent), auth_headers("sk-not-a-key"))
        await refused(stranger)
        await eventually(lambda: LOAD.calls == 0)
        return await readiness()

    assert asyncio.run(scenario())[0] == 200


def test_a_draining_process_refuses_new_calls_and_is_not_ready_but_alive(
    tenant_a: TenantWorld, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    LOAD.drain()

    async def scenario() -> tuple[tuple[dict[str, Any], int], tuple[int, dict[str, Any]], int]:
        caller = await connect(path(openai_agent), auth_headers(tenant_a.secret))
        refusal = await refused(caller)
        alive = await AsyncClient().get("/healthz")
        return refusal, await readiness(), alive.status_code

    (event, code), (status, body), alive = asyncio.run(scenario())
    assert code == CLOSE_TRY_AGAIN
    assert event["error"]["code"] == "server_draining"
    assert status == 503
    assert body["reason"] == "server_draining"
    assert body["draining"] is True
    assert alive == 200
    assert not CallSession.objects.exists()
    assert not scripted_provider.connections


def test_a_lagging_event_loop_refuses_new_calls_until_it_keeps_time_again(
    settings: Any,
) -> None:
    settings.KOE_MAX_LOOP_LAG_MS = 50
    load = ProcessLoad()

    async def scenario() -> list[str | None]:
        watcher = asyncio.create_task(watch_loop_lag(load, interval=0.01))
        states = []
        await asyncio.sleep(0.3)
        states.append(refusal_code(load))
        # Work that holds the loop (as too many calls would): every timer fires late.
        for _ in range(LAG_WINDOW + 2):
            time.sleep(0.1)
            await asyncio.sleep(0.02)
        states.append(refusal_code(load))
        await asyncio.sleep(0.02 * (LAG_WINDOW + 5))  # the loop keeps time again
        states.append(refusal_code(load))
        watcher.cancel()
        return states

    assert asyncio.run(scenario()) == [None, "server_busy", None]


def test_readiness_reports_a_lagging_loop(settings: Any) -> None:
    settings.KOE_MAX_LOOP_LAG_MS = 100
    for _ in range(LAG_WINDOW):
        LOAD.record_lag(0.25)
    status, body = asyncio.run(readiness())
    assert status == 503
    assert body["reason"] == "server_busy"
    assert body["loop_lag_ms"] == 250.0
    settings.KOE_MAX_LOOP_LAG_MS = 0  # no lag limit: the same loop is ready
    assert asyncio.run(readiness())[0] == 200


def test_the_load_is_exported_to_prometheus(
    tenant_a: TenantWorld, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    async def scenario() -> str:
        caller = await connect(path(openai_agent), auth_headers(tenant_a.secret))
        await receive(caller)
        response = await AsyncClient().get("/metrics")
        await caller.disconnect()
        return response.content.decode()

    metrics = asyncio.run(scenario())
    assert "koe_calls_held 1.0" in metrics
    assert "koe_ready 1.0" in metrics
    assert "koe_event_loop_lag_seconds" in metrics
    assert "koe_draining 0.0" in metrics


def refusal_code(load: ProcessLoad) -> str | None:
    refusal = load.refusal()
    return refusal.code if refusal else None


def test_probes_answer_a_kubelet_that_addresses_the_pod_by_its_ip(settings: Any) -> None:
    """Probes (and Prometheus) address the process by its IP, which ALLOWED_HOSTS refuses
    everywhere else."""
    settings.ALLOWED_HOSTS = ["koe.example.com"]
    client = Client()
    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").json() == {"status": "ok"}
    ready = client.get("/readyz", HTTP_HOST="10.1.2.3:8000")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")
    # Prometheus scrapes the same way, with its token.
    settings.KOE_METRICS_TOKEN = "scrape-token"
    scrape = client.get(
        "/metrics", HTTP_HOST="10.1.2.3:8000", headers={"Authorization": "Bearer scrape-token"}
    )
    assert scrape.status_code == 200 and b"koe_calls_held" in scrape.content
    assert client.get("/metrics", HTTP_HOST="10.1.2.3:8000").status_code == 401
    # Anything else from that host is refused as before.
    assert client.get("/v1/agents", HTTP_HOST="10.1.2.3:8000").status_code == 400


def test_without_a_token_a_production_process_keeps_its_metrics_to_itself(
    settings: Any,
) -> None:
    settings.IS_PRODUCTION, settings.KOE_METRICS_TOKEN = True, ""
    response = Client().get("/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "metrics_disabled"
