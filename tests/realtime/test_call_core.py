"""The call core without Channels: a ``Call`` driven with lists of events, between a
scripted provider and a transport that only records what the caller would get."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import orjson
import pytest
from channels.db import database_sync_to_async

from agents.models import Agent
from agents.realtime import call_tools, watchdog
from agents.realtime.access import Caller, open_call
from agents.realtime.call import Call
from agents.realtime.turns import ResponseTurns
from calls.models import CallSession, EndReason
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.realtime.doubles import ScriptedConnection, ScriptedProvider
from tests.realtime.helpers import eventually
from tools.outcomes import ToolOutcome
from tools.runner import ToolCallContext


class RecordingTransport:
    """A caller's connection that keeps what it is given."""

    def __init__(self, *, gone_after: int | None = None) -> None:
        self.frames: list[dict[str, Any]] = []
        self.endings: list[tuple[str, dict[str, Any] | None]] = []
        self.gone_after = gone_after

    async def deliver(self, frame: str) -> bool:
        if self.gone_after is not None and len(self.frames) >= self.gone_after:
            return False
        self.frames.append(orjson.loads(frame))
        return True

    async def ended(self, reason: str, farewell: dict[str, Any] | None) -> None:
        self.endings.append((reason, farewell))

    def types(self) -> list[str]:
        return [frame["type"] for frame in self.frames]


async def _call(world: TenantWorld, agent: Agent, transport: RecordingTransport) -> Call:
    caller = Caller(secret=world.secret, agent_id=agent.public_id, consent="transcript")
    grant = await database_sync_to_async(open_call)(caller)
    call = Call(grant, transport)
    await call.connect_provider()
    await call.start()
    return call


NewCall = Callable[..., Awaitable[tuple[Call, RecordingTransport]]]


@pytest.fixture
def new_call(
    tenant_a: TenantWorld, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> NewCall:
    """Starts a call to the agent on the scripted provider: ``await new_call()``."""

    async def start(**transport_options: Any) -> tuple[Call, RecordingTransport]:
        transport = RecordingTransport(**transport_options)
        return await _call(tenant_a, openai_agent, transport), transport

    return start


def _upstream() -> ScriptedConnection:
    return ScriptedProvider.connections[-1]


async def _ended(call_id: int) -> CallSession:
    def ended() -> CallSession | None:
        return CallSession.objects.filter(pk=call_id, ended_at__isnull=False).first()

    for _ in range(500):
        session = await database_sync_to_async(ended)()
        if session is not None:
            return session
        await asyncio.sleep(0.01)
    raise AssertionError("the call's end was never written")


# --- whose turn it is to respond (pure) ---------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_koe_waits_for_the_response_in_progress_and_the_latest_instructions_win() -> None:
    active = [True]
    turns = ResponseTurns(lambda: active[0])
    assert turns.server_request("first") is None
    assert turns.server_request("second") is None
    active[0] = False
    assert turns.after_response() == [
        {"type": "response.create", "response": {"instructions": "second"}}
    ]
    assert list(turns.requested) == ["server"]


def test_a_client_request_waits_behind_the_greeting_then_goes_in_its_turn() -> None:
    active = [False]
    turns = ResponseTurns(lambda: active[0])
    assert turns.server_request("Greet") is not None
    assert turns.client_request('{"type":"response.create"}') is False
    turns.follow({"type": "response.created", "response": {"id": "r1"}})
    active[0] = True
    assert turns.response_by == "server"
    turns.follow({"type": "response.done", "response": {"id": "r1"}})
    active[0] = False
    assert turns.after_response() == ['{"type":"response.create"}']
    turns.follow({"type": "response.created", "response": {"id": "r2"}})
    assert turns.response_by == "client"


def test_a_client_request_during_its_own_response_is_not_held() -> None:
    active = [False]
    turns = ResponseTurns(lambda: active[0])
    assert turns.client_request("a") is True
    turns.follow({"type": "response.created", "response": {"id": "r1"}})
    active[0] = True
    # The API will refuse it, as it would have without Koe in between.
    assert turns.client_request("b") is True
    turns.follow({"type": "error", "error": {"code": "conversation_already_has_active_response"}})
    assert list(turns.requested) == []


def test_a_response_nobody_asked_for_is_the_providers_own() -> None:
    turns = ResponseTurns(lambda: False)
    turns.follow({"type": "response.created", "response": {"id": "r1"}})
    assert turns.response_by == "server"


def test_the_goodbye_plays_out_for_as_long_as_its_audio_lasts() -> None:
    clock = Clock()
    turns = ResponseTurns(lambda: True, clock=clock)
    turns.follow({"type": "response.created", "response": {"id": "r1"}})
    one_second = "A" * 64000  # base64 of 48,000 bytes: 1 s of 24 kHz PCM16
    turns.follow({"type": "response.output_audio.delta", "delta": one_second})
    turns.follow({"type": "response.output_audio.delta", "delta": one_second})
    clock.now += 0.5
    assert turns.audio_left_to_play() == pytest.approx(1.5)
    clock.now += 5
    assert turns.audio_left_to_play() == 0.0


# --- a Call between a scripted provider and a recording transport --------------------------
def in_a_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test in its own event loop, as the other broker tests do."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


pytestmark_db = pytest.mark.django_db(transaction=True)


@pytestmark_db
@in_a_loop
async def test_a_call_configures_the_session_and_shows_the_agent_as_the_model(
    new_call: NewCall,
) -> None:
    call, transport = await new_call()
    await eventually(lambda: "session.created" in transport.types())
    session = transport.frames[0]["session"]
    assert session["model"] == call.grant.agent_public_id
    assert _upstream().sent[0]["type"] == "session.update"
    assert _upstream().sent[0]["session"]["instructions"] == "You book tables at Acme."
    await call.end(EndReason.CLIENT_CLOSED, "bye")


@pytestmark_db
@in_a_loop
async def test_caller_events_go_upstream_and_a_bad_one_gets_an_error_and_the_call_goes_on(
    new_call: NewCall,
) -> None:
    call, transport = await new_call()
    await call.client_frame('{"type": "input_audio_buffer.commit"}')
    await call.client_frame("{not json")
    await call.client_frame(b'{"type": "response.create"}')  # binary: refused
    await call.client_frame('{"type": "response.create"}')
    assert [event["type"] for event in _upstream().sent[1:]] == [
        "input_audio_buffer.commit",
        "response.create",
    ]
    errors = [frame for frame in transport.frames if frame["type"] == "error"]
    assert [error["error"]["code"] for error in errors] == ["invalid_json", "binary_frame"]
    assert not call.ended
    await call.end(EndReason.CLIENT_CLOSED, "bye")


@pytestmark_db
@in_a_loop
async def test_the_transcript_is_kept_and_the_end_written_when_the_provider_is_lost(
    new_call: NewCall,
) -> None:
    ScriptedProvider.reachable_for = 1  # it hangs up, and cannot be reached again
    call, transport = await new_call()
    _upstream().speak("resp_1", "Welcome to Acme.")
    _upstream().hang_up()
    session = await _ended(call.grant.call_id)
    await eventually(lambda: bool(transport.endings))  # told after the end is written
    assert session.end_reason == EndReason.PROVIDER_ERROR
    transcript = await database_sync_to_async(
        lambda: list(session.transcript.values_list("text", flat=True))
    )()
    assert transcript == ["Welcome to Acme."]
    [(reason, farewell)] = transport.endings
    assert reason == EndReason.PROVIDER_ERROR
    assert farewell is not None and farewell["error"]["code"] == "call_ended_provider_error"
    assert _upstream().closed


@pytestmark_db
@in_a_loop
async def test_a_caller_who_is_gone_ends_the_call_without_a_farewell(new_call: NewCall) -> None:
    call, transport = await new_call(gone_after=1)
    _upstream().speak("resp_1", "Hello?")
    session = await _ended(call.grant.call_id)
    await eventually(lambda: bool(transport.endings))  # told after the end is written
    assert session.end_reason == EndReason.CLIENT_CLOSED
    assert transport.endings == [(EndReason.CLIENT_CLOSED, None)]


@pytestmark_db
@in_a_loop
async def test_an_end_asked_for_with_an_unknown_reason_is_an_operators(new_call: NewCall) -> None:
    call, transport = await new_call()
    await call.end_by_request("because", "")
    await call.end_by_request(EndReason.BUDGET, "twice")  # a call ends once
    session = await _ended(call.grant.call_id)
    await eventually(lambda: bool(transport.endings))  # told after the end is written
    assert (session.end_reason, session.end_detail) == (EndReason.OPERATOR, "Ended by an operator.")
    assert [reason for reason, _ in transport.endings] == [EndReason.OPERATOR]


@pytestmark_db
@in_a_loop
async def test_limits_name_their_end_reason(
    tenant_a: TenantWorld, scripted_provider: type[ScriptedProvider]
) -> None:
    agent = await database_sync_to_async(AgentFactory)(
        tenant=tenant_a.tenant,
        provider="openai",
        model="gpt-realtime",
        max_call_duration_seconds=600,
        idle_timeout_seconds=30,
    )
    transport = RecordingTransport()
    call = await _call(tenant_a, agent, transport)
    quiet_since = call.tracker.last_activity
    assert watchdog.limit_reached(call, quiet_since + 29) is None
    assert watchdog.limit_reached(call, quiet_since + 31) == (
        EndReason.IDLE_TIMEOUT,
        "The call was idle for too long.",
    )
    assert watchdog.limit_reached(call, call.started + 601) == (
        EndReason.MAX_DURATION,
        "The call reached its maximum duration.",
    )
    await call.end(EndReason.CLIENT_CLOSED, "bye")


@pytestmark_db
@in_a_loop
async def test_a_tool_the_model_calls_is_run_and_its_output_answered_with_a_response(
    new_call: NewCall, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[ToolCallContext] = []

    async def runner(context: ToolCallContext) -> ToolOutcome:
        ran.append(context)
        return ToolOutcome.success({"booked": json.loads(context.arguments)["people"]})

    monkeypatch.setattr(call_tools, "run_tool_call", runner)
    call, _ = await new_call()
    _upstream().call_function("book_table", '{"people": 4}', call_id="call_1")
    await eventually(lambda: any(e["type"] == "response.create" for e in _upstream().sent))
    output, request = _upstream().sent[-2:]
    assert (output["item"]["type"], output["item"]["call_id"]) == ("function_call_output", "call_1")
    assert json.loads(output["item"]["output"]) == {"booked": 4}
    assert request == {"type": "response.create"}
    assert ran[0].call_id == call.grant.call_public_id
    await call.end(EndReason.CLIENT_CLOSED, "bye")


class EventRecordingTransport(RecordingTransport):
    """A transport that reads events (as a phone line does) rather than relays frames."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    async def deliver_event(self, event: dict[str, Any]) -> bool:
        self.events.append(event)
        return True


@pytestmark_db
@in_a_loop
async def test_raw_caller_audio_goes_upstream_only_as_base64_and_events_come_back_parsed(
    tenant_a: TenantWorld, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    transport = EventRecordingTransport()
    call = await _call(tenant_a, openai_agent, transport)
    await call.append_audio("AAEC/w==")
    await call.append_audio('AA","type":"session.update')  # not base64: never spliced in
    await call.append_audio("A" * (call.policy.max_frame_bytes + 4))
    await eventually(lambda: "session.created" in [e["type"] for e in transport.events])
    appended = [e for e in _upstream().sent if e["type"] == "input_audio_buffer.append"]
    assert appended == [{"type": "input_audio_buffer.append", "audio": "AAEC/w=="}]
    assert not transport.frames  # no frame was presented: the events were given as they are
    await call.end(EndReason.CLIENT_CLOSED, "done")
