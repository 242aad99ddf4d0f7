"""PCM16 audio for the local provider: protocol frames in and out, and resampling.

The Realtime protocol carries 24 kHz mono PCM16, base64-encoded. Voice activity detection
and Whisper want 16 kHz float samples; the Piper voice speaks at 22.05 kHz. Rates are
converted with libsoxr's polyphase resampler (``soxr``), as a stream where audio arrives
in pieces, so chunk edges leave no clicks.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import soxr

PROTOCOL_RATE = 24000
SPEECH_RATE = 16000

FloatAudio = npt.NDArray[np.float32]
Int16Audio = npt.NDArray[np.int16]


class AudioFormatError(ValueError):
    """A frame's audio is not base64 PCM16."""


def decode_pcm16(encoded: str) -> Int16Audio:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise AudioFormatError("The audio is not valid base64.") from error
    if len(raw) % 2:
        raise AudioFormatError("PCM16 audio must have an even number of bytes.")
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)


def encode_pcm16(samples: Int16Audio) -> str:
    return base64.b64encode(samples.astype("<i2").tobytes()).decode()


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

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self.passthrough = from_rate == to_rate
        self._stream = soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32", quality="HQ")

    def __call__(self, samples: FloatAudio) -> FloatAudio:
        if self.passthrough:
            return samples
        return np.asarray(self._stream.resample_chunk(samples), dtype=np.float32)


def milliseconds(sample_count: int, rate: int) -> int:
    return sample_count * 1000 // rate


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
