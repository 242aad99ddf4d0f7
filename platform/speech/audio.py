"""Audio for the local provider: protocol frames in and out, and resampling.

The Realtime protocol carries mono audio, base64-encoded, as 24 kHz PCM16 (``audio/pcm``)
or, for phone calls, 8 kHz G.711 μ-law (``audio/pcmu``). Voice activity detection and
Whisper want 16 kHz float samples; the voices speak 24 kHz PCM16. Rates are converted
with libsoxr's polyphase resampler (``soxr``), as a stream where audio arrives in pieces,
so chunk edges leave no clicks.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

from speech.g711 import G711_RATE, decode_ulaw, encode_ulaw

# The rate of the protocol's PCM16 (the only rate it allows), and of the voices' speech.
PROTOCOL_RATE = 24000
SPEECH_RATE = 16000

FloatAudio = npt.NDArray[np.float32]
Int16Audio = npt.NDArray[np.int16]


class AudioFormatError(ValueError):
    """A frame's audio is not base64 audio of the session's format."""


def decode_base64(encoded: str) -> bytes:
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise AudioFormatError("The audio is not valid base64.") from error


def decode_pcm16(encoded: str) -> Int16Audio:
    raw = decode_base64(encoded)
    if len(raw) % 2:
        raise AudioFormatError("PCM16 audio must have an even number of bytes.")
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)


def to_float(samples: Int16Audio) -> FloatAudio:
    return (samples.astype(np.float32) / 32768.0).astype(np.float32)


def to_int16(samples: npt.NDArray[np.floating]) -> Int16Audio:
    return np.clip(np.rint(samples * 32767.0), -32768, 32767).astype(np.int16)


def resample(samples: FloatAudio, from_rate: int, to_rate: int) -> FloatAudio:
    """Resample a whole piece of audio (a synthesised sentence, a test clip)."""
    if from_rate == to_rate or not len(samples):
        return samples.astype(np.float32)
    return np.asarray(soxr.resample(samples, from_rate, to_rate, quality="HQ"), dtype=np.float32)


class StreamResampler:
    """Resamples audio that arrives in pieces, keeping the filter state between them."""

    def __init__(self, from_rate: int, to_rate: int, quality: str = "HQ") -> None:
        self.from_rate = from_rate
        self.passthrough = from_rate == to_rate
        self._stream = soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32", quality=quality)

    def __call__(self, samples: FloatAudio) -> FloatAudio:
        if self.passthrough:
            return samples
        return np.asarray(self._stream.resample_chunk(samples), dtype=np.float32)

    def flush(self) -> FloatAudio:
        """The audio still in the filter, at the end of the stream (the resampler is done)."""
        if self.passthrough:
            return np.zeros(0, dtype=np.float32)
        empty = np.zeros(0, dtype=np.float32)
        return np.asarray(self._stream.resample_chunk(empty, last=True), dtype=np.float32)


def milliseconds(sample_count: int, rate: int) -> int:
    return sample_count * 1000 // rate


@dataclass(frozen=True)
class WireFormat:
    """An audio format of the Realtime protocol: how frames carry the samples."""

    name: str  # the GA format's type
    rate: int
    sample_bytes: int

    def description(self) -> dict[str, Any]:
        """The format as the GA session object shows it (only PCM names its rate)."""
        if self.name == PCM16.name:
            return {"type": self.name, "rate": self.rate}
        return {"type": self.name}

    def decode(self, encoded: str) -> Int16Audio:
        """The samples, at this format's rate, of one base64 frame."""
        if self.name == PCMU.name:
            return decode_ulaw(decode_base64(encoded))
        return decode_pcm16(encoded)

    def encode_speech(self, speech: Int16Audio) -> bytes:
        """The bytes of a voice's 24 kHz speech in this format (CPU work: the pool's)."""
        if self.name == PCMU.name:
            narrow = to_int16(resample(to_float(speech), PROTOCOL_RATE, self.rate))
            return encode_ulaw(narrow)
        return speech.astype("<i2").tobytes()

    def milliseconds(self, byte_count: int) -> int:
        """How long ``byte_count`` bytes of this format play."""
        return milliseconds(byte_count // self.sample_bytes, self.rate)


PCM16 = WireFormat("audio/pcm", PROTOCOL_RATE, 2)
PCMU = WireFormat("audio/pcmu", G711_RATE, 1)
WIRE_FORMATS = {wire.name: wire for wire in (PCM16, PCMU)}


def wire_format(description: Any) -> WireFormat | None:
    """The format a session's ``format`` object names, or None if it is not one spoken here."""
    if not isinstance(description, dict):
        return None
    wire = WIRE_FORMATS.get(str(description.get("type")))
    rate = description.get("rate")
    if wire is None or (rate is not None and rate != wire.rate):
        return None
    return wire


@dataclass
class InputBuffer:
    """Caller audio at 16 kHz since the last commit, with its place on the session clock."""

    start_ms: int = 0
    chunks: list[FloatAudio] = field(default_factory=list)
    samples: int = 0

    @property
    def end_ms(self) -> int:
        return self.start_ms + milliseconds(self.samples, SPEECH_RATE)

    def append(self, audio: FloatAudio) -> None:
        self.chunks.append(audio)
        self.samples += len(audio)

    def audio(self, from_ms: int | None = None, to_ms: int | None = None) -> FloatAudio:
        whole = np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.float32)
        first = 0 if from_ms is None else max(0, (from_ms - self.start_ms) * SPEECH_RATE // 1000)
        last = len(whole) if to_ms is None else (to_ms - self.start_ms) * SPEECH_RATE // 1000
        return whole[first:last]

    def keep_from(self, ms: int) -> None:
        """Drop audio before ``ms`` (bounded memory between turns)."""
        if ms <= self.start_ms:
            return
        kept = self.audio(from_ms=ms)
        self.chunks = [kept] if len(kept) else []
        self.start_ms = self.end_ms - milliseconds(len(kept), SPEECH_RATE)
        self.samples = len(kept)

    def reset(self, at_ms: int) -> None:
        self.chunks, self.samples, self.start_ms = [], 0, at_ms
