"""Voice activity and turn detection for the local provider (silero-vad, server_vad rules).

``VoiceActivity`` runs silero-vad on 32 ms frames of 16 kHz audio and keeps the model's
recurrent state for one call. ``TurnDetector`` is plain Python over those speech
probabilities and applies the agent's server_vad settings the way the Realtime API
describes them: speech starts when the probability reaches the threshold (the committed
audio then begins ``prefix_padding_ms`` earlier) and stops after ``silence_duration_ms``
below it. It also says when the caller has been quiet long enough that transcribing
early is worth it, so the transcript is ready when the silence completes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from speech.audio import SPEECH_RATE, FloatAudio
from speech.runtime import vad_session

FRAME_SAMPLES = 512  # silero-vad's frame at 16 kHz
FRAME_MS = FRAME_SAMPLES * 1000 // SPEECH_RATE  # 32
CONTEXT_SAMPLES = 64
# Speech must last this many frames before it counts (a click or a cough does not).
MIN_SPEECH_FRAMES = 3
# Below threshold minus this margin counts as silence (silero's own hysteresis).
SILENCE_MARGIN = 0.15
# semantic_vad has no model here: its eagerness maps onto a silence length.
EAGERNESS_SILENCE_MS = {"low": 1200, "medium": 700, "high": 350, "auto": 500}


class SpeechDetector(Protocol):
    """A voice-activity stage, one per call: the speech probability of each 32 ms frame
    of a stream of 16 kHz samples (audio short of a frame waits for more)."""

    def probabilities(self, samples: FloatAudio) -> list[float]: ...


class VoiceActivity(SpeechDetector):
    """silero-vad over a stream of 16 kHz samples, for one call."""

    def __init__(self) -> None:
        self._session = vad_session()
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, CONTEXT_SAMPLES), dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._rate = np.array(SPEECH_RATE, dtype=np.int64)

    def probabilities(self, samples: FloatAudio) -> list[float]:
        """Speech probability of each complete 32 ms frame; the rest waits for more audio."""
        audio = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        complete = len(audio) - len(audio) % FRAME_SAMPLES
        self._pending = audio[complete:].copy()
        results = []
        for start in range(0, complete, FRAME_SAMPLES):
            frame = audio[start : start + FRAME_SAMPLES].reshape(1, -1)
            model_input = np.concatenate([self._context, frame], axis=1)
            output, self._state = self._session.run(
                None, {"input": model_input, "state": self._state, "sr": self._rate}
            )
            self._context = frame[:, -CONTEXT_SAMPLES:]
            results.append(float(output[0][0]))
        return results


@dataclass(frozen=True)
class TurnSettings:
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500

    @classmethod
    def from_session(cls, detection: dict[str, Any]) -> TurnSettings:
        if detection.get("type") == "semantic_vad":
            eagerness = str(detection.get("eagerness") or "auto")
            return cls(silence_duration_ms=EAGERNESS_SILENCE_MS.get(eagerness, 500))
        return cls(
            threshold=float(detection.get("threshold", 0.5)),
            prefix_padding_ms=int(detection.get("prefix_padding_ms", 300)),
            silence_duration_ms=int(detection.get("silence_duration_ms", 500)),
        )

    @property
    def speculate_after_ms(self) -> int:
        # Whisper takes 0.3-0.4 s on two cores whatever the utterance's length: started
        # this long into the silence, it is done about when the silence ends the turn.
        # A pause that turns out not to end the turn wastes one transcription, no more.
        return max(FRAME_MS * 3, self.silence_duration_ms - 400)


@dataclass(frozen=True)
class SpeechStarted:
    audio_start_ms: int  # includes the prefix padding, as the API reports it


@dataclass(frozen=True)
class SilenceBegan:
    """The caller has been quiet for speculate_after_ms: speech ended at speech_end_ms."""

    speech_end_ms: int


@dataclass(frozen=True)
class SpeechStopped:
    audio_end_ms: int  # includes the silence, as the API reports it
    speech_end_ms: int  # where the voice actually stopped


TurnEvent = SpeechStarted | SilenceBegan | SpeechStopped


@dataclass
class TurnDetector:
    """server_vad over speech probabilities, one 32 ms frame at a time."""

    settings: TurnSettings = field(default_factory=TurnSettings)
    position_ms: int = 0  # audio seen so far, from the start of the session
    speaking: bool = False
    _voiced_run: int = 0
    _speech_end_ms: int = 0
    _speculated: bool = False

    def feed(self, probabilities: list[float]) -> list[TurnEvent]:
        turn_events: list[TurnEvent] = []
        for probability in probabilities:
            frame_start = self.position_ms
            self.position_ms += FRAME_MS
            if probability >= self.settings.threshold:
                self._voiced_run += 1
                self._speech_end_ms = self.position_ms
                self._speculated = False
                if not self.speaking and self._voiced_run >= MIN_SPEECH_FRAMES:
                    self.speaking = True
                    speech_start = frame_start - FRAME_MS * (MIN_SPEECH_FRAMES - 1)
                    start = max(0, speech_start - self.settings.prefix_padding_ms)
                    turn_events.append(SpeechStarted(start))
                continue
            if probability >= self.settings.threshold - SILENCE_MARGIN and self.speaking:
                continue  # between the thresholds: neither new speech nor silence yet
            self._voiced_run = 0
            if not self.speaking:
                continue
            silence = self.position_ms - self._speech_end_ms
            if silence >= self.settings.silence_duration_ms:
                self.speaking = False
                self._speculated = False
                turn_events.append(SpeechStopped(self.position_ms, self._speech_end_ms))
            elif not self._speculated and silence >= self.settings.speculate_after_ms:
                self._speculated = True
                turn_events.append(SilenceBegan(self._speech_end_ms))
        return turn_events

    def reset(self) -> None:
        """Forget a turn in progress (the input buffer was cleared or committed by hand)."""
        self.speaking = False
        self._voiced_run = 0
        self._speculated = False
