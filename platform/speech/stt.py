"""Speech to text for the local provider: Whisper tiny.en through faster-whisper."""

from __future__ import annotations

from collections.abc import Callable

from speech.audio import FloatAudio
from speech.runtime import whisper_model

# A speech-to-text stage: 16 kHz mono audio in, its words out (blocking).
Transcribe = Callable[[FloatAudio], str]
# Shorter than this is not worth a Whisper pass (it pads to 30 s and invents words).
MIN_SPEECH_SAMPLES = 16000 // 10


def transcribe(samples: FloatAudio) -> str:
    """The words in 16 kHz mono audio (blocking: run it in the worker pool)."""
    if len(samples) < MIN_SPEECH_SAMPLES:
        return ""
    segments, _info = whisper_model().transcribe(
        samples,
        language="en",
        beam_size=1,  # greedy: most of the accuracy of beam search at a fraction of the time
        temperature=0.0,
        condition_on_previous_text=False,
        without_timestamps=True,
        vad_filter=False,  # the turn detector already cut the speech out
    )
    return " ".join(segment.text.strip() for segment in segments).strip()
