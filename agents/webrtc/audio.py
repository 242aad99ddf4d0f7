"""A WebRTC call's audio: the caller's Opus in, the agent's voice out, at the protocol's rate.

aiortc decodes the caller's Opus into 48 kHz frames; ``caller_audio`` resamples them to
the provider's PCM16 at 24 kHz (the Realtime protocol's rate, the built-in voice's too)
and hands each 20 ms to the call as an ``input_audio_buffer.append`` would.

``AgentVoice`` is the track the caller hears. The agent's ``response.output_audio.delta``
events are queued in it (they never cross the data channel, as on OpenAI's WebRTC) and
played at real time, 20 ms per frame, silence between responses. It keeps what OpenAI's
WebRTC server tells its clients about this output buffer: ``output_audio_buffer.started``
when a response's audio starts playing, ``.stopped`` when all of it has played, and
``.cleared`` when it is cut off (the caller's ``output_audio_buffer.clear``, or the caller
speaking over the agent); and how much of each item was heard, for the truncation that
keeps the transcript to what the caller heard.
"""

from __future__ import annotations

import asyncio
import base64
import fractions
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError

RATE = 24_000  # PCM16 mono, the Realtime protocol's rate
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000
FRAME_BYTES = 2 * FRAME_SAMPLES
TIME_BASE = fractions.Fraction(1, RATE)


@dataclass
class Segment:
    """Queued audio of one output item."""

    response_id: str
    item_id: str
    audio: bytearray


@dataclass(frozen=True)
class Cut:
    """Where playing stopped when the buffer was cleared: the item, and its ms heard."""

    response_id: str
    item_id: str
    heard_ms: int


class PacedAudio(MediaStreamTrack):
    """An audio track that gives aiortc's sender 20 ms of PCM16 (24 kHz mono) every 20 ms
    of real time, whatever its source has (``next_frame_bytes``)."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._start: float | None = None
        self._timestamp = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._timestamp += FRAME_SAMPLES
            wait = self._start + self._timestamp / RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(self.next_frame_bytes())
        frame.sample_rate = RATE
        frame.pts = self._timestamp
        frame.time_base = TIME_BASE
        return frame

    def next_frame_bytes(self) -> bytes:
        """The next 20 ms (FRAME_BYTES)."""
        raise NotImplementedError


class AgentVoice(PacedAudio):
    """The agent's audio for the caller, paced at real time (see the module's doc)."""

    def __init__(self, notify: Callable[[dict[str, Any]], None]) -> None:
        super().__init__()
        self.notify = notify  # output_audio_buffer.* events for the caller's data channel
        self.queue: deque[Segment] = deque()
        self.heard: dict[str, int] = {}  # item id -> bytes played
        self.playing = ""  # the response whose audio is playing ("" between responses)
        self.audio_done: set[str] = set()  # responses all of whose audio has arrived

    # --- fed by the call ------------------------------------------------------------------
    def add(self, response_id: str, item_id: str, pcm: bytes) -> None:
        last = self.queue[-1] if self.queue else None
        if last is not None and last.item_id == item_id and last.response_id == response_id:
            last.audio += pcm
        else:
            self.queue.append(Segment(response_id, item_id, bytearray(pcm)))

    def response_audio_done(self, response_id: str) -> None:
        """No more audio will come for this response: it stops once what is queued played."""
        if self.playing != response_id and all(s.response_id != response_id for s in self.queue):
            return  # none of its audio is queued or playing (or it was cleared)
        self.audio_done.add(response_id)
        if self.playing == response_id and not self.queue:
            self._stopped()

    def clear(self) -> Cut | None:
        """Cut the agent off: drop what is queued; where it stopped, if it was playing."""
        playing, self.playing = self.playing, ""
        current = self.queue[0] if self.queue else None
        self.queue.clear()
        if not playing:
            return None
        self.notify(buffer_event("output_audio_buffer.cleared", playing))
        if current is None:
            return None
        heard_ms = self.heard.get(current.item_id, 0) * 1000 // (2 * RATE)
        return Cut(current.response_id, current.item_id, heard_ms)

    @property
    def is_playing(self) -> bool:
        return bool(self.playing)

    # --- read by aiortc's sender ------------------------------------------------------------
    def next_frame_bytes(self) -> bytes:
        chunk = bytearray()
        while len(chunk) < FRAME_BYTES and self.queue:
            segment = self.queue[0]
            if not self.playing:
                self.playing = segment.response_id
                self.notify(buffer_event("output_audio_buffer.started", segment.response_id))
            taken = segment.audio[: FRAME_BYTES - len(chunk)]
            del segment.audio[: len(taken)]
            chunk += taken
            self.heard[segment.item_id] = self.heard.get(segment.item_id, 0) + len(taken)
            if not segment.audio:
                self.queue.popleft()
                following = self.queue[0].response_id if self.queue else ""
                if following != segment.response_id and segment.response_id in self.audio_done:
                    self._stopped()
        return bytes(chunk) + bytes(FRAME_BYTES - len(chunk))

    def _stopped(self) -> None:
        response_id, self.playing = self.playing, ""
        self.audio_done.discard(response_id)
        if response_id:
            self.notify(buffer_event("output_audio_buffer.stopped", response_id))


def buffer_event(kind: str, response_id: str) -> dict[str, Any]:
    return {
        "type": kind,
        "event_id": f"event_koe_{time.monotonic_ns():x}",
        "response_id": response_id,
    }


async def received_pcm(track: MediaStreamTrack) -> AsyncIterator[bytes]:
    """A received audio track, decoded and resampled to PCM16 at 24 kHz mono, until it ends."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if not isinstance(frame, av.AudioFrame):
            continue
        for resampled in resampler.resample(frame):
            pcm = resampled.to_ndarray().tobytes()
            if pcm:
                yield pcm


async def caller_audio(track: MediaStreamTrack, deliver: Callable[[str], Any]) -> None:
    """The caller's track, as the base64 PCM16 a call's ``append_audio`` takes."""
    async for pcm in received_pcm(track):
        await deliver(base64.b64encode(pcm).decode())


def set_jitter_buffer(peer: RTCPeerConnection, frames: int) -> None:
    """How many 20 ms frames the caller's audio waits for before it is decoded.

    aiortc fixes it at 4 (80 ms): it absorbs reordering and jitter on the Internet, and
    it is most of what WebRTC adds to voice-to-voice latency on a quiet network
    (docs/performance.md). aiortc has no option for it, so its receivers' buffers are
    replaced (pinned aiortc < 2; checked by tests/webrtc).
    """
    for receiver in peer.getReceivers():
        if receiver.track is not None and receiver.track.kind == "audio":
            buffer = getattr(receiver, "_RTCRtpReceiver__jitter_buffer", None)
            if isinstance(buffer, JitterBuffer):
                receiver._RTCRtpReceiver__jitter_buffer = JitterBuffer(  # type: ignore[attr-defined]
                    capacity=buffer.capacity, prefetch=frames
                )
