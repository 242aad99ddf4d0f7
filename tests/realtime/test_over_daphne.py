"""Koe under a real Daphne server: the official openai SDK talks to an agent through it."""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest

from agents.models import Agent
from agents.versions import save_agent
from calls.models import CallSession, TranscriptItem
from tests.conftest import TenantWorld
from tests.fakes.realtime_server import FakeRealtimeServer, FunctionCall, Turn
from tests.live import daphne_server

pytestmark = pytest.mark.django_db(transaction=True)

UPSTREAM_KEY = "sk-test-upstream"


def _wait_for_end(timeout: float = 10) -> CallSession:
    deadline = time.monotonic() + timeout
    while True:
        call = CallSession.objects.first()
        if call is not None and call.status == "ended":
            return call
        assert time.monotonic() < deadline, "the call was never recorded as ended"
        time.sleep(0.05)


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_the_openai_sdk_holds_a_conversation_with_a_tool_call(
    tenant_a: TenantWorld, openai_agent: Agent, server: str
) -> None:
    # The agent's tool is a real one (a mock tool: a fixed reply), run by the server's
    # own tools layer.
    tool = openai_agent.tools.get()
    tool.kind = "mock"
    tool.parameters = {
        "type": "object",
        "properties": {"people": {"type": "integer"}},
        "required": ["people"],
    }
    tool.mock_response = '{"booked": true, "people": {people}}'
    tool.save()
    save_agent(openai_agent, [tool])
    script = [
        Turn(user="", assistant="Good evening, how can I help?"),
        Turn(
            user="",
            function_call=FunctionCall("book_table", {"people": 2}),
            assistant_after_call="Your table for two is booked.",
        ),
    ]
    fake = FakeRealtimeServer(script, expected_key=UPSTREAM_KEY).start_in_thread()
    events: list[Any] = []
    try:
        with daphne_server(
            server,
            KOE_OPENAI_REALTIME_URL=fake.url,
            OPENAI_API_KEY=UPSTREAM_KEY,
        ) as base:
            client = openai.OpenAI(api_key=tenant_a.secret, base_url=f"{base}/v1")
            with client.realtime.connect(
                model=openai_agent.public_id, extra_query={"consent": "transcript"}
            ) as connection:
                for text, responses in (("Hello!", 1), ("Book a table for two, please.", 2)):
                    connection.conversation.item.create(
                        item={
                            "type": "message",
                            "role": "user",
                            "content": [{"type": "input_text", "text": text}],
                        }
                    )
                    connection.response.create()
                    done = 0
                    for event in connection:
                        events.append(event)
                        if event.type == "error":
                            raise AssertionError(event.error.message)
                        if event.type == "response.done":
                            done += 1
                            if done == responses:
                                break
            call = _wait_for_end()
    finally:
        fake.stop()

    spoken = [e.transcript for e in events if e.type == "response.output_audio_transcript.done"]
    assert spoken == ["Good evening, how can I help?", "Your table for two is booked."]
    assert events[0].type == "session.created"
    assert call.end_reason == "client_closed"
    assert call.channel == "api"
    assert call.usage.count() == 3
    assert (
        list(TranscriptItem.objects.filter(role="assistant").values_list("text", flat=True))
        == spoken
    )
    tool_items = TranscriptItem.objects.filter(role="tool", tool_name="book_table")
    assert tool_items.count() == 2
    outputs = [json.loads(item.text) for item in tool_items if item.text]
    assert outputs == [{"ok": True, "message": '{"booked": true, "people": 2}'}]


def test_stopping_the_server_ends_live_calls_and_keeps_what_they_said(
    tenant_a: TenantWorld, openai_agent: Agent
) -> None:
    fake = FakeRealtimeServer(
        [Turn(user="", assistant="Hello, you are through to Acme.")], expected_key=UPSTREAM_KEY
    ).start_in_thread()
    try:
        with daphne_server(KOE_OPENAI_REALTIME_URL=fake.url, OPENAI_API_KEY=UPSTREAM_KEY) as base:
            client = openai.OpenAI(api_key=tenant_a.secret, base_url=f"{base}/v1")
            connection = client.realtime.connect(
                model=openai_agent.public_id, extra_query={"consent": "transcript"}
            ).enter()
            connection.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Hi"}],
                }
            )
            connection.response.create()
            for event in connection:
                if event.type == "response.done":
                    break
            # Leaving the block stops Daphne (SIGTERM) while the call is live.
        call = _wait_for_end()
        connection.close()
    finally:
        fake.stop()
    assert call.end_reason == "server_shutdown"
    assert list(call.transcript.filter(role="assistant").values_list("text", flat=True)) == [
        "Hello, you are through to Acme."
    ]


def test_a_slow_upstream_handshake_still_opens_the_call(
    tenant_a: TenantWorld, openai_agent: Agent
) -> None:
    """The upstream answers its upgrade after 7 s (within the provider's 10 s open
    timeout): the caller's own handshake waits for it rather than being dropped at
    Daphne's default 5 s with no answer at all."""
    fake = FakeRealtimeServer(
        [Turn(user="", assistant="Sorry to keep you.")],
        expected_key=UPSTREAM_KEY,
        handshake_delay=7,
    ).start_in_thread()
    try:
        with daphne_server(KOE_OPENAI_REALTIME_URL=fake.url, OPENAI_API_KEY=UPSTREAM_KEY) as base:
            client = openai.OpenAI(api_key=tenant_a.secret, base_url=f"{base}/v1")
            started = time.monotonic()
            with client.realtime.connect(model=openai_agent.public_id) as connection:
                first = connection.recv()
                waited = time.monotonic() - started
    finally:
        fake.stop()
    assert first.type == "session.created"
    assert waited >= 7  # it really waited for the upstream
