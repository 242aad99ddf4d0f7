"""The sideband: the tenant's server joins a live WebRTC call (``/v1/realtime?call_id=``),
sees its events, steers it and ends it; nobody else can join."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from channels.db import database_sync_to_async

from agents.models import Agent
from calls.load import LOAD
from calls.models import CallSession, EndReason
from tests.conftest import TenantWorld
from tests.fakes.realtime_server import FakeRealtimeServer, FunctionCall, Turn, tone
from tests.realtime.conftest import auth_headers
from tests.realtime.helpers import connect, eventually, receive, refused, session_token
from tests.realtime.test_upstream import UPSTREAM_KEY
from tests.webrtc.caller import WebRTCCaller
from tests.webrtc.test_webrtc_calls import ended, place_call, secret_key_call, silence

pytestmark = pytest.mark.django_db(transaction=True)

HOURS = Turn(user="When do you open?", assistant="We open at nine every weekday.")


async def sideband_until(sideband: Any, event_type: str, seen: list[dict[str, Any]]) -> None:
    while True:
        event = await receive(sideband, timeout=20)
        seen.append(event)
        if event["type"] == event_type:
            return


def test_the_tenants_server_follows_steers_and_ends_a_browsers_call(
    tenant_a: TenantWorld, openai_agent: Agent, upstream_settings: Any
) -> None:
    token = session_token(tenant_a.secret, openai_agent.public_id)

    async def scenario() -> tuple[list[dict[str, Any]], WebRTCCaller, FakeRealtimeServer]:
        async with FakeRealtimeServer([HOURS], expected_key=UPSTREAM_KEY) as fake:
            upstream_settings.KOE_OPENAI_REALTIME_URL = fake.url
            caller = WebRTCCaller()
            response = await place_call(caller, f"Bearer {token}")
            call_id = response["Location"].rsplit("/", 1)[1]
            await caller.until("session.created")
            sideband = await connect(
                f"/v1/realtime?call_id={call_id}", auth_headers(tenant_a.secret)
            )
            await asyncio.sleep(0.2)  # the call hears of it over the channel layer
            seen: list[dict[str, Any]] = []
            caller.say(silence(300) + tone(700) + silence(900))
            await sideband_until(sideband, "response.done", seen)
            # A bad event from the server is answered to the server; the call goes on.
            await sideband.send_to(text_data='{"type": "no.such.event"}')
            rejected = await receive(sideband)
            assert rejected["type"] == "error"
            # The server asks the agent to speak; the caller hears it on its channel.
            mark = len(caller.events)
            await sideband.send_to(text_data=orjson.dumps({"type": "response.create"}).decode())
            await caller.until("response.done", after=mark)
            await sideband_until(sideband, "response.done", seen)
            # And ends the call.
            await sideband.send_to(text_data='{"type": "session.close"}')
            call = await ended(call_id)
            assert call.end_reason == EndReason.OPERATOR
            closing = await sideband.receive_output(timeout=5)
            assert closing["type"] == "websocket.close"
            await caller.close()
            await eventually(lambda: LOAD.calls == 0)
            return seen, caller, fake

    seen, caller, fake = asyncio.run(scenario())
    types = [event["type"] for event in seen]
    assert "response.output_audio_transcript.done" in types
    assert "conversation.item.input_audio_transcription.completed" in types
    assert "response.output_audio.delta" not in types  # audio stays off the layer
    assert [e for e in fake.received if e["type"] == "response.create"]
    # The caller's client saw both responses: its turn's, and the one the server asked for.
    responses = [e["response"] for e in caller.events if e["type"] == "response.done"]
    assert len(responses) == 2
    assert responses[0]["output"][0]["content"][0]["transcript"] == HOURS.assistant


def test_only_the_owning_tenants_secret_key_joins_a_call(
    tenant_a: TenantWorld, tenant_b: TenantWorld, openai_agent: Agent, upstream_settings: Any
) -> None:
    token = session_token(tenant_a.secret, openai_agent.public_id)

    async def scenario() -> None:
        async with FakeRealtimeServer([HOURS], expected_key=UPSTREAM_KEY) as fake:
            upstream_settings.KOE_OPENAI_REALTIME_URL = fake.url
            caller, call_id = await secret_key_call(tenant_a, openai_agent)
            for headers, code in [
                (auth_headers(tenant_b.secret), "call_not_found"),
                (auth_headers(token), "missing_api_key"),
                ([], "missing_api_key"),
            ]:
                sideband = await connect(f"/v1/realtime?call_id={call_id}", headers)
                event, close_code = await refused(sideband)
                assert event["error"]["code"] == code
                assert close_code in (4000, 4001)
            stored = await database_sync_to_async(CallSession.objects.get)(public_id=call_id)
            assert stored.end_reason == ""  # the call went on
            await caller.close()
            await ended(call_id)
            await eventually(lambda: LOAD.calls == 0)

    asyncio.run(scenario())


def test_the_tenants_server_answers_a_function_it_declared_on_the_sideband(
    tenant_a: TenantWorld, openai_agent: Agent, upstream_settings: Any
) -> None:
    """A browser's call: the tenant's server declares a function of its own (the browser
    may not), the model calls it, the server answers it on the sideband, and the agent
    speaks the answer to the caller."""
    token = session_token(tenant_a.secret, openai_agent.public_id)
    script = [
        Turn(
            user="How many points do I have?",
            function_call=FunctionCall("loyalty_points", {"member": "M-7"}),
            assistant_after_call="You have one hundred and twenty points.",
        )
    ]
    declared = {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "tools": [
                {
                    "type": "function",
                    "name": "loyalty_points",
                    "description": "A member's loyalty points.",
                    "parameters": {"type": "object", "properties": {"member": {"type": "string"}}},
                }
            ],
        },
    }

    async def scenario() -> tuple[FakeRealtimeServer, WebRTCCaller]:
        async with FakeRealtimeServer(script, expected_key=UPSTREAM_KEY) as fake:
            upstream_settings.KOE_OPENAI_REALTIME_URL = fake.url
            caller = WebRTCCaller()
            response = await place_call(caller, f"Bearer {token}")
            call_id = response["Location"].rsplit("/", 1)[1]
            await caller.until("session.created")
            sideband = await connect(
                f"/v1/realtime?call_id={call_id}", auth_headers(tenant_a.secret)
            )
            await asyncio.sleep(0.2)
            await sideband.send_to(text_data=orjson.dumps(declared).decode())
            seen: list[dict[str, Any]] = []
            await sideband_until(sideband, "session.updated", seen)
            caller.say(silence(300) + tone(700) + silence(900))
            await sideband_until(sideband, "response.function_call_arguments.done", seen)
            called = seen[-1]
            assert called["name"] == "loyalty_points"
            output = {
                "type": "conversation.item.create",
                "item": {
                    "type": "function_call_output",
                    "call_id": called["call_id"],
                    "output": '{"points": 120}',
                },
            }
            await sideband.send_to(text_data=orjson.dumps(output).decode())
            await sideband.send_to(text_data='{"type": "response.create"}')
            mark = len(caller.events)
            await caller.until("response.output_audio_transcript.done", after=mark)
            await caller.close()
            await ended(call_id)
            return fake, caller

    fake, caller = asyncio.run(scenario())
    assert fake.function_outputs[0]["output"] == '{"points": 120}'
    spoken = [
        e["transcript"]
        for e in caller.events
        if e["type"] == "response.output_audio_transcript.done"
    ]
    assert spoken[-1] == "You have one hundred and twenty points."
