"""Driving a recorded call through the broker in tests: a fake recorder clock, the
fixtures every recording test needs, and helpers that speak for the caller and the agent.

The recorder reads arrival times from ``calls.recordings.monotonic``; with the fake clock
where each sound must land in the WAV is known to the sample.
"""

from __future__ import annotations

import base64
import itertools
import wave
from pathlib import Path

import numpy as np
import orjson
from channels.testing import WebsocketCommunicator

from agents.models import Agent
from tests.conftest import TenantWorld
from tests.realtime.conftest import auth_headers
from tests.realtime.doubles import ScriptedConnection, ScriptedProvider
from tests.realtime.helpers import connect, eventually, receive

RATE = 24_000
MS = RATE // 1000


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def b64(samples: np.ndarray) -> str:
    return base64.b64encode(samples.astype("<i2").tobytes()).decode()


def tone(milliseconds: int, value: int) -> np.ndarray:
    return np.full(milliseconds * MS, value, dtype="<i2")


def runs(signal: np.ndarray) -> list[tuple[int, int, int]]:
    """(start ms, end ms, value) of each stretch of equal non-zero samples."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], signal.astype(np.int32), [0]])))
    return [
        (int(start) // MS, int(end) // MS, int(signal[start]))
        for start, end in itertools.pairwise(edges)
        if signal[start] != 0
    ]


def read_wav(path: Path) -> tuple[wave._wave_params, np.ndarray, np.ndarray]:
    with wave.open(str(path)) as wav:
        params = wav.getparams()
        stereo = np.frombuffer(wav.readframes(params.nframes), dtype="<i2").reshape(-1, 2)
    return params, stereo[:, 0], stereo[:, 1]


async def open_call(
    scripted_provider: type[ScriptedProvider], agent: Agent, tenant: TenantWorld, consent: str
) -> tuple[WebsocketCommunicator, ScriptedConnection]:
    """A caller connected to the agent with this consent, and the provider's side of the call."""
    communicator = await connect(
        f"/v1/realtime?model={agent.public_id}&consent={consent}", auth_headers(tenant.secret)
    )
    await receive(communicator)  # session.created
    return communicator, scripted_provider.connections[0]


async def send_caller_audio(
    communicator: WebsocketCommunicator,
    connection: ScriptedConnection,
    clock: FakeClock,
    start_s: float,
    chunks: list[np.ndarray],
) -> None:
    """Send chunks as a microphone would: each one when its audio has been captured."""
    moment = start_s
    for chunk in chunks:
        moment += len(chunk) / RATE
        clock.now = moment
        sent = len(connection.raw_sent)
        await communicator.send_to(
            text_data=orjson.dumps(
                {"type": "input_audio_buffer.append", "audio": b64(chunk)}
            ).decode()
        )
        await eventually(lambda sent=sent: len(connection.raw_sent) > sent)


async def agent_says(
    communicator: WebsocketCommunicator,
    connection: ScriptedConnection,
    response_id: str,
    item_id: str,
    deltas: list[np.ndarray],
) -> None:
    """The provider sends a response's audio at once (faster than real time)."""
    connection.push({"type": "response.created", "response": {"id": response_id}})
    for delta in deltas:
        connection.push(
            {
                "type": "response.output_audio.delta",
                "response_id": response_id,
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "delta": b64(delta),
            }
        )
    connection.push(
        {"type": "response.output_audio.done", "response_id": response_id, "item_id": item_id}
    )
    while (await receive(communicator))["type"] != "response.output_audio.done":
        pass  # relayed in order: once this arrives, every delta before it was recorded
