"""10,000 events drawn from the whole GA client event set, valid and mutated, into one call.

Against the built-in provider and against the fake OpenAI upstream, through the realtime
endpoint. Whatever a client sends, the call survives it: every reply is a valid server
event, the call is still live at the end, hanging up ends it (no call left active), and
a normal call works afterwards. The generator is seeded (KOE_FUZZ_SEED picks another
sequence; KOE_FUZZ_EVENTS another length); a failure names its seed.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from agents.models import Agent
from calls.models import CallSession
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, ToolFactory
from tests.fakes.realtime_server import FakeRealtimeServer, Turn
from tests.local.helpers import SERVER_EVENT
from tests.realtime.conftest import auth_headers
from tests.realtime.fuzz_events import EventSource
from tests.realtime.helpers import connect, receive

pytestmark = pytest.mark.django_db(transaction=True)

SEED = int(os.environ.get("KOE_FUZZ_SEED", "20261206"))
EVENTS = int(os.environ.get("KOE_FUZZ_EVENTS", "10000"))
UPSTREAM_KEY = "sk-fuzz-upstream"
ANSWER = "We are open every day from noon to eleven."


@pytest.fixture(params=["local", "openai"])
def fuzzed_agent(
    request: pytest.FixtureRequest, tenant_a: TenantWorld, settings: Any
) -> Iterator[tuple[Agent, FakeRealtimeServer | None]]:
    tool = ToolFactory(tenant=tenant_a.tenant, name="book_table", kind="mock")
    faq = [{"question": "When are you open?", "answer": ANSWER}]
    if request.param == "local":
        yield AgentFactory(tenant=tenant_a.tenant, greeting="", faq=faq, tools=[tool]), None
        return
    script = [Turn(user="", assistant=ANSWER)] * 2 * EVENTS  # more turns than events
    fake = FakeRealtimeServer(script, expected_key=UPSTREAM_KEY).start_in_thread()
    settings.KOE_OPENAI_REALTIME_URL = fake.url
    settings.OPENAI_API_KEY = UPSTREAM_KEY
    try:
        agent = AgentFactory(
            tenant=tenant_a.tenant, provider="openai", model="gpt-realtime", voice="alloy",
            greeting="", tools=[tool],
        )  # fmt: skip
        yield agent, fake
    finally:
        fake.stop()


async def _drain_until(communicator: Any, event_id: str, seen: Counter[str]) -> None:
    """Read every event up to the sentinel's error, checking each is a valid server event."""
    while True:
        event = await receive(communicator, timeout=60)
        SERVER_EVENT.validate_python(event)
        seen[event["type"]] += 1
        if event["type"] == "error":
            seen["error:" + str(event["error"]["code"])] += 1
            if event["error"].get("event_id") == event_id:
                return


def test_ten_thousand_hostile_events_never_kill_a_call(
    tenant_a: TenantWorld, fuzzed_agent: tuple[Agent, FakeRealtimeServer | None]
) -> None:
    agent, upstream = fuzzed_agent
    source = EventSource(SEED)
    path = f"/v1/realtime?model={agent.public_id}&consent=transcript"

    async def fuzz() -> Counter[str]:
        communicator = await connect(path, auth_headers(tenant_a.secret), timeout=30)
        seen: Counter[str] = Counter()
        for number, frame in enumerate(source.frames(EVENTS)):
            await communicator.send_input({"type": "websocket.receive", "text": frame})
            if number % 500 == 499:
                # Read as we go (as a client would), so the outputs never pile up.
                sentinel = f"sentinel-{number}"
                await communicator.send_to(
                    text_data=f'{{"type": "made.up", "event_id": "{sentinel}"}}'
                )
                await _drain_until(communicator, sentinel, seen)
        assert await CallSession.objects.filter(status="active").acount() == 1, (
            f"the call ended under fuzzing (KOE_FUZZ_SEED={SEED})"
        )
        await communicator.disconnect()
        return seen

    seen = asyncio.run(fuzz())
    assert not CallSession.objects.filter(status="active").exists()
    call = CallSession.objects.get()
    assert call.end_reason == "client_closed", f"KOE_FUZZ_SEED={SEED}: {call.end_detail}"
    if upstream is not None:
        # What reached OpenAI's fake was all valid by the SDK's client types.
        assert upstream.invalid == [] and upstream.faults == []
    # The run exercised both sides: refusals naming many faults, and real work relayed.
    assert seen["error:invalid_value"] and seen["error:unknown_parameter"]
    assert seen["session.updated"] > 10

    async def normal_call() -> list[dict[str, Any]]:
        communicator = await connect(path, auth_headers(tenant_a.secret), timeout=30)
        events = []
        await communicator.send_to(
            text_data='{"type": "conversation.item.create", "item": {"type": "message", '
            '"role": "user", "content": [{"type": "input_text", "text": "When are you open?"}]}}'
        )
        await communicator.send_to(text_data='{"type": "response.create"}')
        while not events or events[-1]["type"] != "response.done":
            events.append(await receive(communicator, timeout=60))
        await communicator.disconnect()
        return events

    events = asyncio.run(normal_call())
    assert not [event for event in events if event["type"] == "error"]
    spoken = [e["transcript"] for e in events if e["type"].endswith("transcript.done")]
    assert spoken[-1:] == [ANSWER]
    assert not CallSession.objects.filter(status="active").exists()
