"""Recording a call through the realtime broker (WebsocketCommunicator, scripted provider).

The recorder reads arrival times from ``calls.recordings.monotonic``; the tests drive it
with a fake clock, so where each sound must land in the WAV is known to the sample.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.models import Agent
from calls import recordings
from calls.models import CallSession, CallStatus, Recording, RecordingStatus
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.realtime.doubles import ScriptedProvider
from tests.realtime.helpers import eventually
from tests.recordings.broker_call import (
    RATE,
    FakeClock,
    agent_says,
    b64,
    open_call,
    read_wav,
    runs,
    send_caller_audio,
    tone,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_recorded_call_is_a_stereo_wav_with_each_side_where_it_was_heard(
    scripted_provider: type[ScriptedProvider],
    recording_agent: Agent,
    tenant_a: TenantWorld,
    clock: FakeClock,
    media_root: Path,
) -> None:
    tenant_id = tenant_a.tenant.public_id

    async def scenario() -> str:
        communicator, connection = await open_call(
            scripted_provider, recording_agent, tenant_a, "recording"
        )
        # The caller speaks from 1.0 s to 1.4 s, in 40 ms chunks (values 1001..1010).
        await send_caller_audio(
            communicator, connection, clock, 1.0, [tone(40, 1001 + k) for k in range(10)]
        )
        # The agent answers at 2.0 s: a second of audio arriving in one burst.
        clock.now = 2.0
        await agent_says(communicator, connection, "resp_1", "item_a", [tone(500, 7)] * 2)
        # At 4.0 s a second answer of two seconds starts...
        clock.now = 4.0
        await agent_says(communicator, connection, "resp_2", "item_b", [tone(1000, 9)] * 2)
        # ...and the caller barges in at 4.5 s: the widget heard 500 ms of it.
        await send_caller_audio(communicator, connection, clock, 4.46, [tone(40, 555)])
        await communicator.send_to(
            text_data=orjson.dumps(
                {
                    "type": "conversation.item.truncate",
                    "item_id": "item_b",
                    "content_index": 0,
                    "audio_end_ms": 500,
                }
            ).decode()
        )
        await eventually(lambda: connection.sent[-1]["type"] == "conversation.item.truncate")
        # Settled audio is written in parts while the call goes on.
        clock.now = 10.0
        call = await CallSession.objects.aget()
        parts = media_root / "recordings" / tenant_id / "parts" / call.public_id
        await eventually(lambda: parts.is_dir() and any(parts.iterdir()))
        await communicator.disconnect()
        return call.public_id

    call_id = asyncio.run(scenario())

    call = CallSession.objects.get(public_id=call_id)
    assert call.status == CallStatus.ENDED
    recording = Recording.objects.get(call=call)
    assert recording.status == RecordingStatus.COMPLETE
    assert recording.tenant == tenant_a.tenant
    assert recording.file.name == f"recordings/{tenant_id}/{call_id}.wav"
    path = media_root / recording.file.name
    content = path.read_bytes()
    assert recording.size_bytes == len(content)
    assert recording.sha256 == hashlib.sha256(content).hexdigest()
    assert recording.duration_ms == 10_000
    assert recording.completed_at is not None
    # The parts are gone once the WAV is composed.
    assert not (media_root / "recordings" / tenant_id / "parts" / call_id).exists()

    params, left, right = read_wav(path)
    assert (params.nchannels, params.framerate, params.sampwidth) == (2, 24_000, 2)
    assert params.nframes == 10 * RATE
    # Caller: each chunk where it was captured, then the barge-in.
    assert runs(left) == [(1000 + 40 * k, 1040 + 40 * k, 1001 + k) for k in range(10)] + [
        (4460, 4500, 555)
    ]
    # Agent: the burst played from 2.0 s for a second; the second answer cut at 500 ms.
    assert runs(right) == [(2000, 3000, 7), (4000, 4500, 9)]


@pytest.mark.parametrize("consent", ["transcript", "none"])
def test_without_recording_consent_nothing_is_recorded(
    scripted_provider: type[ScriptedProvider],
    recording_agent: Agent,
    tenant_a: TenantWorld,
    clock: FakeClock,
    media_root: Path,
    consent: str,
) -> None:
    async def scenario() -> None:
        communicator, connection = await open_call(
            scripted_provider, recording_agent, tenant_a, consent
        )
        await send_caller_audio(communicator, connection, clock, 0.0, [tone(40, 5)] * 5)
        await agent_says(communicator, connection, "resp_1", "item_a", [tone(300, 6)])
        clock.now = 10.0
        await communicator.disconnect()

    asyncio.run(scenario())

    call = CallSession.objects.get()
    assert call.status == CallStatus.ENDED
    assert call.consent_scope == consent
    assert not Recording.objects.exists()
    assert not media_root.exists() or not any(media_root.rglob("*"))


def test_recording_consent_the_agent_does_not_offer_records_nothing(
    scripted_provider: type[ScriptedProvider],
    tenant_a: TenantWorld,
    clock: FakeClock,
    media_root: Path,
) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, provider="openai", greeting="")

    async def scenario() -> None:
        communicator, connection = await open_call(scripted_provider, agent, tenant_a, "recording")
        await send_caller_audio(communicator, connection, clock, 0.0, [tone(40, 5)] * 5)
        await communicator.disconnect()

    asyncio.run(scenario())

    assert CallSession.objects.get().consent_scope == "transcript"
    assert not Recording.objects.exists()
    assert not media_root.exists() or not any(media_root.rglob("*"))


def test_a_storage_failure_marks_the_recording_failed_and_the_call_goes_on(
    scripted_provider: type[ScriptedProvider],
    recording_agent: Agent,
    tenant_a: TenantWorld,
    clock: FakeClock,
    media_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_save(*args: Any, **kwargs: Any) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(recordings.RecordingWriter, "write_part", broken_save)

    async def scenario() -> list[dict[str, Any]]:
        communicator, connection = await open_call(
            scripted_provider, recording_agent, tenant_a, "recording"
        )
        await send_caller_audio(communicator, connection, clock, 0.0, [tone(40, 5)] * 5)
        clock.now = 10.0
        for _ in range(500):  # the next periodic flush fails (a few of them a second)
            if (await Recording.objects.aget()).status == RecordingStatus.FAILED:
                break
            await asyncio.sleep(0.01)
        assert (await Recording.objects.aget()).status == RecordingStatus.FAILED
        # The call is still relaying both ways.
        await agent_says(communicator, connection, "resp_1", "item_a", [tone(300, 6)])
        await send_caller_audio(communicator, connection, clock, 10.0, [tone(40, 5)])
        await communicator.disconnect()
        return connection.sent

    sent = asyncio.run(scenario())

    assert sum(event["type"] == "input_audio_buffer.append" for event in sent) == 6
    recording = Recording.objects.get()
    assert recording.status == RecordingStatus.FAILED
    assert recording.file.name == ""
    assert CallSession.objects.get().status == CallStatus.ENDED


def test_the_server_shutting_down_finishes_the_recording(
    scripted_provider: type[ScriptedProvider],
    recording_agent: Agent,
    tenant_a: TenantWorld,
    clock: FakeClock,
    media_root: Path,
) -> None:
    from agents.realtime import shutdown

    async def scenario() -> None:
        communicator, connection = await open_call(
            scripted_provider, recording_agent, tenant_a, "recording"
        )
        await send_caller_audio(communicator, connection, clock, 0.5, [tone(40, 5)] * 5)
        clock.now = 3.0
        live = [consumer for consumer in list(shutdown._live) if not consumer.ended]
        assert len(live) == 1
        await live[0].end_for_shutdown()
        await communicator.disconnect()

    asyncio.run(scenario())

    call = CallSession.objects.get()
    assert call.end_reason == "server_shutdown"
    recording = Recording.objects.get(call=call)
    assert recording.status == RecordingStatus.COMPLETE
    _, left, right = read_wav(media_root / recording.file.name)
    assert runs(left) == [(500, 700, 5)]
    assert not right.any()


def test_the_recording_hooks_add_next_to_nothing_to_each_relayed_frame() -> None:
    """The hooks run on the relay path: an append to a list, no decoding or I/O."""
    recorder = recordings.CallRecorder(1, "ten", "call")
    chunk = b64(tone(40, 3))
    frames = 20_000
    started = time.perf_counter()
    for number in range(frames):
        recorder.caller_audio(chunk)
        recorder.agent_audio("item", chunk)
        if number % 500 == 0:
            recorder.inbox.clear()
    per_frame = (time.perf_counter() - started) / (2 * frames)
    # ~0.2 µs here; a 40 ms frame's budget on the relay is milliseconds.
    assert per_frame < 20e-6, f"{per_frame * 1e6:.2f} µs per frame"
