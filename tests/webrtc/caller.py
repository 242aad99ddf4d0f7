"""A WebRTC caller built the way OpenAI's browser sample is, on aiortc: a microphone track,
a data channel named ``oai-events``, the SDP offer posted to ``/v1/realtime/calls``.

What it says is PCM16 at 24 kHz, paced at real time and sent as Opus; what it hears is the
agent's audio track, decoded and kept at 24 kHz; every event on the data channel is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import numpy as np
import orjson
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from agents.webrtc.audio import FRAME_BYTES, PacedAudio, received_pcm, set_jitter_buffer


class Microphone(PacedAudio):
    """Says queued PCM16 (24 kHz mono) at real time; silence when there is nothing to say."""

    def __init__(self) -> None:
        super().__init__()
        self.queued = bytearray()
        self.sent = 0  # bytes of what it was asked to say that it has sent

    def say(self, pcm: bytes) -> None:
        self.queued += pcm

    def next_frame_bytes(self) -> bytes:
        chunk = bytes(self.queued[:FRAME_BYTES])
        del self.queued[:FRAME_BYTES]
        self.sent += len(chunk)
        return chunk + bytes(FRAME_BYTES - len(chunk))


class WebRTCCaller:
    def __init__(self, *, data_channel: bool = True, jitter_frames: int | None = None) -> None:
        self.peer = RTCPeerConnection()
        self.jitter_frames = jitter_frames  # its receiver's buffer (aiortc's 4 if None)
        self.microphone = Microphone()
        self.peer.addTrack(self.microphone)
        self.events: list[dict[str, Any]] = []
        self.heard = bytearray()  # the agent's audio, PCM16 24 kHz mono
        self._arrived = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.channel = self.peer.createDataChannel("oai-events") if data_channel else None
        if self.channel is not None:
            self.channel.on("message", self._on_message)

        @self.peer.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.ensure_future(self._listen(track)))

    async def offer(self) -> str:
        await self.peer.setLocalDescription(await self.peer.createOffer())
        return str(self.peer.localDescription.sdp)

    async def answered(self, sdp: str) -> None:
        await self.peer.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        if self.jitter_frames is not None:
            set_jitter_buffer(self.peer, self.jitter_frames)

    def send(self, event: dict[str, Any]) -> None:
        assert self.channel is not None
        self.channel.send(orjson.dumps(event).decode())

    def say(self, pcm: bytes) -> None:
        self.microphone.say(pcm)

    async def until(
        self, event_type: str, *, after: int = 0, timeout: float = 20
    ) -> dict[str, Any]:
        """The first event of ``event_type`` at or after index ``after``."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[after:]:
                if event.get("type") == event_type:
                    return event
            left = deadline - time.monotonic()
            assert left > 0, f"no {event_type} in {[e.get('type') for e in self.events]}"
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    def types(self) -> list[str]:
        return [str(event.get("type")) for event in self.events]

    def loudness(self) -> float:
        """RMS of the agent's audio heard so far."""
        samples = np.frombuffer(bytes(self.heard), dtype="<i2").astype(np.float64)
        return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.peer.close()

    def _on_message(self, message: str | bytes) -> None:
        self.events.append(orjson.loads(message))
        self._arrived.set()

    async def _listen(self, track: MediaStreamTrack) -> None:
        async for pcm in received_pcm(track):
            self.heard += pcm
