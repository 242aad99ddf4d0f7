"""The local voices and ears: what Piper or espeak-ng says, Whisper hears back."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from speech import runtime, stt, text, tts
from speech.audio import (
    PROTOCOL_RATE,
    SPEECH_RATE,
    StreamResampler,
    resample,
    to_float,
)


def heard(audio: np.ndarray) -> str:
    return stt.transcribe(resample(to_float(audio), PROTOCOL_RATE, SPEECH_RATE)).lower()


def test_piper_speaks_at_the_protocol_rate_and_whisper_understands_it() -> None:
    audio = tts.PiperSpeech(deterministic=True).speak(
        "Your table for two is booked for seven o'clock."
    )
    assert audio.dtype == np.int16
    assert 1.5 < len(audio) / PROTOCOL_RATE < 5
    words = heard(audio)
    assert ("table for two" in words or "table for 2" in words) and "book" in words, words


@pytest.mark.espeak
def test_espeak_is_the_light_fallback_voice() -> None:
    voice = tts.load_voice("espeak")
    assert isinstance(voice, tts.EspeakSpeech)
    audio = voice.speak("Hello, how can I help you today?")
    assert 1 < len(audio) / PROTOCOL_RATE < 5
    words = heard(audio)
    assert "help you" in words, words


def test_without_any_voice_the_call_cannot_start(monkeypatch: Any) -> None:
    monkeypatch.setattr(tts, "piper_installed", lambda: False)
    monkeypatch.setattr(tts, "espeak_binary", lambda: None)
    with pytest.raises(runtime.ModelUnavailable, match="espeak-ng"):
        tts.load_voice("auto")


def test_sentences_split_where_a_voice_pauses() -> None:
    assert text.sentences("Dr. Smith is in. See you at 7.30! Bye?\nNext line") == [
        "Dr. Smith is in.",
        "See you at 7.30!",
        "Bye?",
        "Next line",
    ]


def test_streamed_resampling_matches_whole_resampling() -> None:
    # A 440 Hz tone resampled in 20 ms pieces keeps its pitch and loudness, no clicks.
    seconds = 1.0
    t = np.arange(int(PROTOCOL_RATE * seconds)) / PROTOCOL_RATE
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    stream = StreamResampler(PROTOCOL_RATE, SPEECH_RATE)
    pieces = [stream(tone[i : i + 480]) for i in range(0, len(tone), 480)]
    out = np.concatenate(pieces)
    assert abs(len(out) - SPEECH_RATE * seconds) < 400  # the filter holds back ~21 ms
    steady = out[1000:-1000]
    spectrum = np.abs(np.fft.rfft(steady))
    peak_hz = np.argmax(spectrum) * SPEECH_RATE / len(steady)
    assert abs(peak_hz - 440) < 3
    assert np.max(np.abs(np.diff(steady))) < 0.1  # a 440 Hz sine at 16 kHz changes slowly
