"""A recording's pure audio logic: decoding, the stereo timeline, the WAV header.

The call's audio (PCM16, or G.711 from phone lines) becomes 24 kHz PCM16 samples, placed
on one timeline (caller left, agent right) and rendered as interleaved stereo for a WAV.
Nothing here touches storage, the database or the event loop: ``calls.recordings`` feeds
it from a worker thread and writes what it renders, and the tests drive it with arrays.

How audio is placed (24 kHz samples from the moment recording started):

* caller audio (left): a chunk is audio captured just before it was sent, so it ends at
  its arrival time; chunks that arrive in a burst follow each other without overlap, and
  so do chunks delayed by up to 200 ms of network jitter (no gap is invented);
* agent audio (right): providers send it faster than real time and the client plays it
  in order, so each delta starts where the previous one ends, never before it arrived;
* a truncation (``conversation.item.truncate``: the client heard ``audio_end_ms`` of an
  item, then stopped playback) cuts the item's audio there and drops whatever agent audio
  was queued after it, so the right channel is what the caller actually heard;
* anything else is silence.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass, field

import numpy as np
import soxr

from speech.g711 import G711_RATE, G711_TABLES

SAMPLE_RATE = 24_000
CHANNELS = 2
SAMPLE_BYTES = 2
FRAME_BYTES = CHANNELS * SAMPLE_BYTES  # one stereo sample
WAV_HEADER_BYTES = 44
MAX_WAV_DATA_BYTES = 0xFFFF_FFFF - (WAV_HEADER_BYTES - 8)  # RIFF sizes are 32-bit
# Caller audio arriving up to this late still follows the previous chunk without a gap.
CALLER_JITTER_SAMPLES = SAMPLE_RATE * 200 // 1000


class RecordingError(Exception):
    """A recording could not be made (e.g. too long for a WAV); the call goes on without it."""


# --- decoding the call's audio format -----------------------------------------------------


class AudioDecoder:
    """One direction's audio, as the agent's format carries it, to 24 kHz PCM16 samples.

    PCM16 passes through. G.711 (8 kHz) is expanded through its table and upsampled with
    a streaming resampler kept per direction, so chunk edges do not click; soxr's quick
    quality keeps its delay to a few samples and its output in step with the input.
    """

    def __init__(self, audio_format: str = "pcm16") -> None:
        self.table = G711_TABLES.get(audio_format)
        self.resampler = (
            soxr.ResampleStream(G711_RATE, SAMPLE_RATE, 1, dtype="int16", quality="QQ")
            if self.table is not None
            else None
        )

    def decode(self, payload: str) -> np.ndarray:
        """Samples of one base64 audio payload; an undecodable payload is no audio."""
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return np.zeros(0, dtype="<i2")
        if self.table is None or self.resampler is None:
            return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2")
        narrow = self.table[np.frombuffer(raw, dtype=np.uint8)]
        return np.asarray(self.resampler.resample_chunk(narrow), dtype="<i2")


# --- the mixer: pure timeline logic -------------------------------------------------------


@dataclass
class _Segment:
    start: int  # timeline sample
    samples: np.ndarray

    @property
    def end(self) -> int:
        return self.start + len(self.samples)


@dataclass
class _Track:
    """One channel: placed segments not yet written, and where sequential audio goes next."""

    segments: list[_Segment] = field(default_factory=list)
    cursor: int = 0

    def place(self, samples: np.ndarray, earliest: int) -> int:
        start = max(self.cursor, earliest)
        if len(samples):
            self.segments.append(_Segment(start, samples))
            self.cursor = start + len(samples)
        return start

    def cut(self, at: int) -> None:
        """Drop everything from ``at`` on (the client stopped playback there)."""
        kept = []
        for segment in self.segments:
            if segment.end <= at:
                kept.append(segment)
            elif segment.start < at:
                kept.append(_Segment(segment.start, segment.samples[: at - segment.start]))
        self.segments = kept
        self.cursor = min(self.cursor, at)

    def take(self, begin: int, end: int) -> np.ndarray:
        """Samples of [begin, end) with silence in the gaps; what ends before ``end`` goes."""
        out = np.zeros(end - begin, dtype="<i2")
        kept = []
        for segment in self.segments:
            low, high = max(segment.start, begin), min(segment.end, end)
            if low < high:
                out[low - begin : high - begin] = segment.samples[
                    low - segment.start : high - segment.start
                ]
            if segment.end > end:
                if segment.start < end:
                    segment = _Segment(end, segment.samples[end - segment.start :])
                kept.append(segment)
        self.segments = kept
        return out


@dataclass
class _Span:
    """Where a stretch of an agent item's audio went: timeline start, offset in the item."""

    start: int
    offset: int
    length: int


class CallMixer:
    """Places the call's audio on one timeline (24 kHz samples since recording started)
    and renders it, oldest first, as interleaved stereo PCM16: caller left, agent right.

    Plain and synchronous: the recorder drives it from one thread at a time.
    """

    def __init__(self) -> None:
        self.caller = _Track()
        self.agent = _Track()
        self.written = 0  # samples already rendered: nothing is placed before this
        self.has_caller_audio = False
        self._items: dict[str, list[_Span]] = {}
        self._truncated: set[str] = set()

    def add_caller(self, samples: np.ndarray, arrived: int) -> None:
        # The chunk was captured before it was sent: it ends when it arrived...
        captured = arrived - len(samples)
        if self.has_caller_audio and captured - self.caller.cursor <= CALLER_JITTER_SAMPLES:
            # ...unless it is only late by network jitter: the microphone did not pause,
            # so the caller's audio stays continuous instead of gaining clicks of silence.
            captured = self.caller.cursor
        self.caller.place(samples, max(captured, self.written))
        self.has_caller_audio = self.has_caller_audio or bool(len(samples))

    def add_agent(self, item_id: str, samples: np.ndarray, arrived: int) -> None:
        if item_id in self._truncated or not len(samples):
            return  # the client stopped playing this item: its late deltas were not heard
        start = self.agent.place(samples, max(arrived, self.written))
        spans = self._items.setdefault(item_id, [])
        if spans and spans[-1].start + spans[-1].length == start:
            spans[-1].length += len(samples)
        else:
            offset = spans[-1].offset + spans[-1].length if spans else 0
            spans.append(_Span(start, offset, len(samples)))

    def truncate(self, item_id: str, audio_end_ms: int) -> None:
        """The client heard ``audio_end_ms`` of the item and stopped playback there."""
        spans = self._items.get(item_id)
        if spans is None:
            return  # nothing of it was placed (e.g. truncated before its first audio)
        self._truncated.add(item_id)
        heard = audio_end_ms * SAMPLE_RATE // 1000
        for span in spans:
            if heard < span.offset + span.length:
                cut = span.start + max(0, heard - span.offset)
                # What was already written stays: the settle margin makes that rare.
                self.agent.cut(max(cut, self.written))
                return

    def end_agent_at(self, at: int) -> None:
        """The call ended: agent audio still queued for playback was never heard."""
        self.agent.cut(max(at, self.written))

    @property
    def end(self) -> int:
        """Where the last placed audio ends."""
        return max(self.caller.cursor, self.agent.cursor, self.written)

    def render(self, until: int) -> bytes:
        """Interleaved stereo PCM16 of [written, until), settled from now on."""
        if until <= self.written:
            return b""
        stereo = np.empty((until - self.written, CHANNELS), dtype="<i2")
        stereo[:, 0] = self.caller.take(self.written, until)
        stereo[:, 1] = self.agent.take(self.written, until)
        self.written = until
        return stereo.tobytes()


# --- the WAV container --------------------------------------------------------------------


def wav_header(data_bytes: int) -> bytes:
    """The 44-byte header of a stereo 24 kHz PCM16 WAV carrying ``data_bytes`` of audio."""
    if data_bytes > MAX_WAV_DATA_BYTES:
        raise RecordingError(f"{data_bytes} bytes of audio do not fit in a WAV file.")
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        data_bytes + WAV_HEADER_BYTES - 8,
        b"WAVE",
        b"fmt ",
        16,  # size of the fmt chunk
        1,  # PCM
        CHANNELS,
        SAMPLE_RATE,
        SAMPLE_RATE * FRAME_BYTES,  # byte rate
        FRAME_BYTES,  # block align
        SAMPLE_BYTES * 8,
        b"data",
        data_bytes,
    )
