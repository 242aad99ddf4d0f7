"""A spoken call to the demo agent on the built-in provider, recorded end to end.

Everything is real: the broker, the local provider (VAD, Whisper, the scripted engine,
Piper), the recorder writing parts and composing the WAV under a temporary MEDIA_ROOT.
The caller's audio must be in the left channel exactly as sent, the agent's in the
right exactly as the provider sent it, each at the time it was sent or played.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import wave
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.utils import timezone

from calls.models import CallSession, Recording, RecordingStatus
from dashboard.management.commands.seed_demo import seed_demo
from tests.local.helpers import appends, utterance
from tests.realtime.helpers import connect, receive

pytestmark = pytest.mark.django_db(transaction=True)

RATE = 24_000
FRAME_SECONDS = 0.04


def locate_in_order(channel: np.ndarray, chunks: list[np.ndarray], start: int = 0) -> list[int]:
    """Where each chunk occurs, sample for sample, each after the one before (-1: missing)."""
    haystack = channel.tobytes()
    positions = []
    for chunk in chunks:
        at = haystack.find(chunk.tobytes(), start * 2)
        while at != -1 and at % 2:  # a match starts on a sample boundary
            at = haystack.find(chunk.tobytes(), at + 1)
        if at == -1:
            return [*positions, -1]
        positions.append(at // 2)
        start = at // 2 + len(chunk)
    return positions


def test_a_spoken_call_is_recorded_with_both_voices_where_they_were_heard(
    settings: Any, tmp_path: Path
) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.KOE_RECORDING_FLUSH_SECONDS = 1
    demo = seed_demo()
    frames = appends(utterance("I'd like a table for two at seven."), int(FRAME_SECONDS * 1000))

    async def scenario() -> tuple[list[dict[str, Any]], float]:
        communicator = await connect(
            f"/v1/realtime?model={demo['agent_id']}&consent=recording",
            [(b"authorization", f"Bearer {demo['secret_key']}".encode())],
            timeout=30,  # the first call on a process loads the models
        )
        seen: list[dict[str, Any]] = []

        async def until_response_done() -> None:
            while True:
                event = await receive(communicator, timeout=30)
                event["received_at"] = time.time()
                seen.append(event)
                if event["type"] == "response.done":
                    return

        async def listen(response_id: str) -> None:
            """Stay on the line while a response plays (it arrived faster than real time)."""
            deltas = [e for e in seen if e.get("response_id") == response_id and "delta" in e]
            first = next(e for e in deltas if e["type"] == "response.output_audio.delta")
            seconds = sum(
                len(base64.b64decode(e["delta"])) / 2 / RATE
                for e in deltas
                if e["type"] == "response.output_audio.delta"
            )
            await asyncio.sleep(max(0.0, first["received_at"] + seconds - time.time()) + 0.2)

        await until_response_done()  # the greeting
        await listen(seen[-1]["response"]["id"])
        # The caller speaks in real time, one 40 ms frame after another, as a microphone.
        started = time.time()
        for number, frame in enumerate(frames):
            await communicator.send_to(text_data=frame)
            await asyncio.sleep(max(0.0, started + (number + 1) * FRAME_SECONDS - time.time()))
        await until_response_done()  # the function call
        await until_response_done()  # the spoken result
        await listen(seen[-1]["response"]["id"])
        await communicator.disconnect()
        return seen, started

    seen, caller_started = asyncio.run(scenario())

    call = CallSession.objects.get()
    recording = Recording.objects.get(call=call)
    assert recording.status == RecordingStatus.COMPLETE
    path = Path(settings.MEDIA_ROOT) / recording.file.name
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, RATE, 2)
        stereo = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    left, right = stereo[:, 0].copy(), stereo[:, 1].copy()
    assert abs(recording.duration_ms - len(stereo) * 1000 // RATE) <= 1
    assert recording.started_at - call.started_at < timedelta(seconds=5)
    assert recording.completed_at is not None and recording.completed_at <= timezone.now()
    assert not list((Path(settings.MEDIA_ROOT) / "recordings").rglob("*.pcm"))  # parts gone

    # Real speech models and real time: a loaded machine delays frames by a few hundred
    # milliseconds; exact placement is tested with a fake clock in test_broker_recording.
    slack = 0.5

    def at_seconds(wall: float) -> float:
        """A wall-clock moment as a position in the recording."""
        return wall - recording.started_at.timestamp()

    # The caller's words, frame for frame, from when they were sent.
    sent = [
        np.frombuffer(base64.b64decode(json.loads(frame)["audio"]), dtype="<i2") for frame in frames
    ]
    caller = locate_in_order(left, sent)
    assert -1 not in caller, "some of the caller's audio is missing from the left channel"
    # (Silent frames match any silence: time the voiced ones.)
    voiced = [number for number, chunk in enumerate(sent) if chunk.any()]
    first, last = voiced[0], voiced[-1]
    assert abs(caller[first] / RATE - at_seconds(caller_started + first * FRAME_SECONDS)) < slack
    caller_end = caller[last] + len(sent[last])
    # Real-time frames stay continuous (no invented gaps).
    assert caller_end - caller[first] == sum(len(chunk) for chunk in sent[first : last + 1])

    # Each agent response, delta for delta, in the right channel, from when it arrived.
    deltas = [e for e in seen if e["type"] == "response.output_audio.delta"]
    response_ids = list(dict.fromkeys(e["response_id"] for e in deltas))
    assert len(response_ids) == 2  # the greeting and the booking's confirmation
    found = []
    for response_id in response_ids:
        mine = [e for e in deltas if e["response_id"] == response_id]
        audio = [np.frombuffer(base64.b64decode(e["delta"]), dtype="<i2") for e in mine]
        positions = locate_in_order(right, audio, start=found[-1][-1] if found else 0)
        assert -1 not in positions, f"agent audio of {response_id} missing from the right"
        start = next(number for number, chunk in enumerate(audio) if chunk.any())
        assert abs(positions[start] / RATE - at_seconds(mine[start]["received_at"])) < slack
        found.append(positions)
        for position, chunk in zip(positions, audio, strict=True):
            right[position : position + len(chunk)] = 0
    greeting, answer = found
    assert greeting[-1] < caller[first] < caller_end < answer[-1]
    # Nothing else is in either channel: silence around the voices.
    for position, chunk in zip(caller, sent, strict=True):
        left[position : position + len(chunk)] = 0
    assert not left.any() and not right.any()
