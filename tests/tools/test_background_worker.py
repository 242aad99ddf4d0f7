"""Background tools on the real Redis broker with a real Celery worker process.

The live call is a consumer in this process (a scripted provider upstream) on the Redis
channel layer; the tool is a webhook to a server in this process; the task runs in a
`celery -A koe worker` subprocess, which delivers the result through the call's group.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agents.models import Agent
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, ToolFactory
from tests.live import Worker, celery_worker
from tests.realtime.conftest import auth_headers
from tests.realtime.doubles import ScriptedConnection, ScriptedProvider
from tests.realtime.helpers import connect, receive
from tools.invocations import ToolInvocation

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


class BookingServer:
    """A tenant's booking webhook: books once per Idempotency-Key; can hold requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.bookings: dict[str, dict[str, Any]] = {}
        self.hold = threading.Event()  # set: requests wait for release
        self.released = threading.Event()
        self.arrived = threading.Semaphore(0)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers["Idempotency-Key"]
                owner.requests.append({"key": key, "body": body})
                owner.arrived.release()
                if owner.hold.is_set():
                    owner.released.wait(30)
                booking = owner.bookings.setdefault(
                    key, {"reference": f"B{len(owner.bookings) + 1}", **body["arguments"]}
                )
                payload = json.dumps({"booked": True, **booking}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the worker that asked is gone

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/book"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for_request(self, timeout: float = 30) -> None:
        assert self.arrived.acquire(timeout=timeout), "the webhook was never called"

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()


@pytest.fixture
def booking_server() -> Iterator[BookingServer]:
    server = BookingServer()
    yield server
    server.close()


@pytest.fixture
def worker(settings: Any) -> Iterator[Worker]:
    settings.KOE_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    with celery_worker(KOE_OUTBOUND_ALLOWLIST="127.0.0.1") as running:
        yield running


def booking_agent(world: TenantWorld, url: str) -> Agent:
    tool = ToolFactory(
        tenant=world.tenant,
        name="book_table",
        kind="webhook",
        webhook_url=url,
        execution="background",
        timeout_seconds=20,
        parameters={
            "type": "object",
            "properties": {"party_size": {"type": "integer"}},
            "required": ["party_size"],
        },
    )
    return AgentFactory(
        tenant=world.tenant, provider="openai", model="gpt-realtime", voice="marin", tools=[tool]
    )


def respond_to_everything(event: dict[str, Any], connection: ScriptedConnection) -> None:
    if event["type"] == "response.create":
        number = sum(1 for e in connection.sent if e["type"] == "response.create")
        connection.speak(f"resp_{number}")


async def book_in_a_call(
    world: TenantWorld, agent: Agent, provider: type[ScriptedProvider]
) -> tuple[Any, ScriptedConnection]:
    """Open a call whose model at once calls the (background) booking tool."""
    communicator = await connect(
        f"/v1/realtime?model={agent.public_id}&consent=transcript", auth_headers(world.secret)
    )
    await receive(communicator)
    connection = provider.connections[-1]
    connection.call_function("book_table", '{"party_size": 2}')
    return communicator, connection


async def wait_for_output(
    connection: ScriptedConnection, communicator: Any, timeout: float = 40
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in connection.sent:
            if event["type"] == "conversation.item.create":
                item: dict[str, Any] = event["item"]
                return item
        await asyncio.sleep(0.05)
    application = communicator.future
    failure = application.exception() if application.done() else None
    raise AssertionError(
        f"the tool's result never reached the call; it sent "
        f"{[e['type'] for e in connection.sent]}; the application: {failure!r}"
    ) from failure


def outputs_sent(connection: ScriptedConnection) -> list[dict[str, Any]]:
    return [e["item"] for e in connection.sent if e["type"] == "conversation.item.create"]


def test_a_workers_result_reaches_the_live_call(
    tenant_a: TenantWorld,
    scripted_provider: type[ScriptedProvider],
    booking_server: BookingServer,
    worker: Worker,
) -> None:
    agent = booking_agent(tenant_a, booking_server.url)
    scripted_provider.responder = respond_to_everything

    async def scenario() -> dict[str, Any]:
        communicator, connection = await book_in_a_call(tenant_a, agent, scripted_provider)
        output = await wait_for_output(connection, communicator)
        await communicator.disconnect()
        return output

    output = asyncio.run(scenario())

    assert output["call_id"] == "call_fc"
    assert json.loads(output["output"]) == {"booked": True, "reference": "B1", "party_size": 2}
    invocation = ToolInvocation.objects.get()
    assert (invocation.status, invocation.delivery, invocation.attempts) == (
        "succeeded",
        "delivered",
        1,
    )
    assert "run_tool_invocation[" in worker.output()


def test_a_worker_killed_mid_task_runs_it_again_exactly_once_in_effect(
    tenant_a: TenantWorld,
    scripted_provider: type[ScriptedProvider],
    booking_server: BookingServer,
    worker: Worker,
) -> None:
    agent = booking_agent(tenant_a, booking_server.url)
    scripted_provider.responder = respond_to_everything
    booking_server.hold.set()

    async def scenario() -> list[dict[str, Any]]:
        communicator, connection = await book_in_a_call(tenant_a, agent, scripted_provider)
        await asyncio.to_thread(booking_server.wait_for_request)
        for child in worker.child_pids():  # the process running the task dies
            os.kill(child, signal.SIGKILL)
        booking_server.hold.clear()  # the task's second run is answered at once
        await wait_for_output(connection, communicator)
        # Once the task has finished nothing else can arrive: wait for that, not a time.
        deadline = time.monotonic() + 30
        while "succeeded in" not in worker.output():
            assert time.monotonic() < deadline, worker.output()
            await asyncio.sleep(0.05)
        await communicator.disconnect()
        return outputs_sent(connection)

    outputs = asyncio.run(scenario())

    keys = {request["key"] for request in booking_server.requests}
    assert len(booking_server.requests) == 2  # the task ran again...
    assert len(keys) == 1  # ...as the same function call
    assert len(booking_server.bookings) == 1  # so the tenant booked once
    assert len(outputs) == 1  # and the call heard the result once
    invocation = ToolInvocation.objects.get()
    assert (invocation.status, invocation.delivery, invocation.attempts) == (
        "succeeded",
        "delivered",
        2,
    )


def test_a_result_for_a_call_that_ended_is_stored_not_delivered(
    tenant_a: TenantWorld,
    scripted_provider: type[ScriptedProvider],
    booking_server: BookingServer,
    worker: Worker,
) -> None:
    agent = booking_agent(tenant_a, booking_server.url)
    scripted_provider.responder = respond_to_everything
    booking_server.hold.set()

    async def scenario() -> None:
        communicator, _ = await book_in_a_call(tenant_a, agent, scripted_provider)
        await asyncio.to_thread(booking_server.wait_for_request)
        await communicator.disconnect()  # the caller hangs up while the tool runs

    asyncio.run(scenario())
    booking_server.released.set()
    deadline = time.monotonic() + 30
    while ToolInvocation.objects.get().status != "succeeded":
        assert time.monotonic() < deadline, worker.output()
        time.sleep(0.1)

    invocation = ToolInvocation.objects.get()
    assert invocation.delivery == "call_ended"
    assert json.loads(invocation.result)["booked"] is True
    assert outputs_sent(scripted_provider.connections[0]) == []
