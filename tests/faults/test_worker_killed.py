"""Drills: the Celery worker running a background tool dies, or its result goes astray.

The caller is told the truth within the tool's time (it did not answer), the broker hands
the task to the next worker within its visibility timeout (not Redis's default hour), a
tool that is safe to run again runs again under the same Idempotency-Key (booked once),
one that is not is never run twice, and a result reaches the call until the call says it
has it. The live call is a consumer in this process, on the Redis channel layer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async

from agents.models import Agent
from agents.realtime.consumer import RealtimeConsumer
from tests.conftest import TenantWorld
from tests.live import Worker, celery_worker
from tests.realtime.doubles import ScriptedConnection, ScriptedProvider
from tests.tools.test_background_worker import (
    BookingServer,
    book_in_a_call,
    booking_agent,
    outputs_sent,
    respond_to_everything,
)
from tools.invocations import ToolInvocation

pytestmark = [pytest.mark.faults, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

VISIBILITY_SECONDS = "6"  # the broker's visibility timeout in these drills
GRACE_SECONDS = 1.0  # how long past the tool's timeout the call waits (tests: short)


@pytest.fixture
def booking_server() -> Iterator[BookingServer]:
    server = BookingServer()
    yield server
    server.close()


@pytest.fixture
def drill_settings(settings: Any, scripted_provider: type[ScriptedProvider]) -> Any:
    settings.KOE_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    settings.KOE_BACKGROUND_TOOL_GRACE_SECONDS = GRACE_SECONDS
    scripted_provider.responder = respond_to_everything
    return settings


def start_worker() -> Any:
    return celery_worker(
        purge=False,
        KOE_OUTBOUND_ALLOWLIST="127.0.0.1",
        KOE_CELERY_VISIBILITY_TIMEOUT=VISIBILITY_SECONDS,
    )


async def until(condition: Any, what: str, timeout: float = 60, *, query: bool = False) -> None:
    """Wait for ``condition()``; ``query``: it reads the database (run off the loop)."""
    check = database_sync_to_async(condition) if query else None
    deadline = time.monotonic() + timeout
    while not (await check() if check else condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def system_notes(connection: ScriptedConnection) -> list[str]:
    return [
        event["item"]["content"][0]["text"]
        for event in connection.sent
        if event["type"] == "conversation.item.create" and event["item"]["type"] == "message"
    ]


@pytest.mark.parametrize("retry_safe", [True, False])
def test_a_dead_worker_leaves_the_caller_an_honest_answer_and_the_task_runs_on(
    retry_safe: bool,
    tenant_a: TenantWorld,
    scripted_provider: type[ScriptedProvider],
    booking_server: BookingServer,
    drill_settings: Any,
) -> None:
    agent: Agent = booking_agent(tenant_a, booking_server.url)
    tool = agent.tools.get()
    tool.timeout_seconds = 3
    tool.retry_safe = retry_safe
    tool.save()
    from agents.versions import save_agent

    save_agent(agent, list(agent.tools.all()))
    booking_server.hold.set()
    booking_server.released.clear()

    async def scenario() -> tuple[ScriptedConnection, float, float]:
        with start_worker() as first:
            communicator, connection = await book_in_a_call(tenant_a, agent, scripted_provider)
            asked = time.monotonic()
            await asyncio.to_thread(booking_server.wait_for_request)
            first.kill()  # mid-request: nothing acknowledged
        booking_server.hold.clear()  # the next run is answered at once
        booking_server.released.set()
        # The next worker is up before the dead one's message is due again, so it must
        # find that message while running, not only when it starts.
        with start_worker():
            # Told the truth within the tool's time (3 s) and the grace: it did not answer.
            await until(lambda: outputs_sent(connection), "an answer to the function call")
            answered = time.monotonic() - asked
            invocation = await database_sync_to_async(ToolInvocation.objects.get)()
            await until(
                lambda: ToolInvocation.objects.filter(
                    pk=invocation.pk, status__in=["succeeded", "failed"]
                ).exists(),
                "the task to run again on the next worker",
                query=True,
            )
            await until(lambda: system_notes(connection), "the late result as news")
            finished = time.monotonic() - asked
        await communicator.disconnect()
        return connection, answered, finished

    connection, answered, finished = asyncio.run(scenario())

    [output] = outputs_sent(connection)[:1]
    assert json.loads(output["output"])["error"]["code"] == "no_answer"
    assert answered < 3 + GRACE_SECONDS + 2
    # The broker's visibility timeout (6 s here) and a sweep or two, not Redis's default
    # hour, nor kombu's default of one sweep every 100 s.
    assert finished < 40
    invocation = ToolInvocation.objects.get()
    assert invocation.delivery == "delivered"  # the call confirmed the late result
    [note] = system_notes(connection)
    if retry_safe:
        # Run again under the same key: the tenant saw two requests and booked once.
        assert len(booking_server.requests) == 2
        assert len({request["key"] for request in booking_server.requests}) == 1
        assert len(booking_server.bookings) == 1
        assert invocation.status == "succeeded"
        assert '"booked":true' in note
    else:
        # Never run twice: it may have booked; the call is told it is unknown.
        assert len(booking_server.requests) == 1
        assert (invocation.status, invocation.error_code) == ("failed", "interrupted")
        assert "may or may not have completed" in note


def test_a_result_that_goes_astray_is_sent_again_until_the_call_has_it(
    tenant_a: TenantWorld,
    scripted_provider: type[ScriptedProvider],
    booking_server: BookingServer,
    drill_settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = booking_agent(tenant_a, booking_server.url)
    original = RealtimeConsumer.tool_result
    dropped: list[dict[str, Any]] = []

    async def lossy(self: RealtimeConsumer, message: dict[str, Any]) -> None:
        if not dropped:
            dropped.append(message)  # lost on the way (a Redis restart, say)
            return
        await original(self, message)

    monkeypatch.setattr(RealtimeConsumer, "tool_result", lossy)

    async def scenario() -> tuple[ScriptedConnection, Worker]:
        with start_worker() as worker:
            communicator, connection = await book_in_a_call(tenant_a, agent, scripted_provider)
            await until(lambda: outputs_sent(connection), "the result to reach the call")
            await until(lambda: "succeeded in" in worker.output(), "the task to finish", timeout=30)
            await communicator.disconnect()
            return connection, worker

    connection, _ = asyncio.run(scenario())
    assert len(dropped) == 1
    [output] = outputs_sent(connection)  # once, though it was sent twice
    assert json.loads(output["output"])["booked"] is True
    assert ToolInvocation.objects.get().delivery == "delivered"
