"""The caller's side of a local session: appended audio in, committed turns out.

Appended audio, manual commits and clears are handled strictly in order by one task.
Each chunk is resampled to 16 kHz (from the rate of the input format it was appended in:
24 kHz PCM16 or 8 kHz μ-law), buffered and scored by the voice-activity stage; the turn
detector (the agent's server_vad settings) turns the scores into speech started, a pause
(when transcription starts early, so the words are ready when the silence ends the turn)
and speech stopped. Each committed utterance gets a turn task that waits for its
transcript (turns finish in the order they were spoken) and may start a response.
The session (``LocalSession``) speaks the protocol: this only tells it what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.realtime import events
from agents.realtime.providers.local.conversation import new_id
from speech.audio import (
    SPEECH_RATE,
    FloatAudio,
    InputBuffer,
    Int16Audio,
    StreamResampler,
    to_float,
)
from speech.g711 import G711_RATE
from speech.runtime import run_cpu
from speech.stt import Transcribe
from speech.vad import (
    FRAME_MS,
    MIN_SPEECH_FRAMES,
    SilenceBegan,
    SpeechDetector,
    SpeechStarted,
    SpeechStopped,
    TurnDetector,
)

if TYPE_CHECKING:
    from agents.realtime.providers.local.session import LocalSession

# The input buffer keeps at most this much audio while nobody commits it.
MAX_BUFFER_MS = 5 * 60 * 1000
# A manual commit needs at least this much audio, as the API requires.
MIN_COMMIT_MS = 100
# The speech kept after the voice stops, so Whisper hears the word's end.
TRANSCRIBE_TAIL_MS = 150


def speech_resampler(rate: int) -> StreamResampler:
    """A stream from the input's rate to the speech stages' 16 kHz."""
    # Phone audio (8 kHz G.711, under 14 bits) loses nothing to soxr's 16-bit medium
    # quality, which holds it back 26 ms where high quality would take 66 ms of each turn.
    return StreamResampler(rate, SPEECH_RATE, quality="MQ" if rate == G711_RATE else "HQ")


@dataclass
class _Audio:
    """An appended chunk, decoded, at the rate of the input format it came in."""

    samples: Int16Audio
    rate: int


@dataclass
class _Commit:
    """A manual input_audio_buffer.commit, queued behind the audio before it."""

    event_id: str | None


@dataclass
class _Clear:
    pass


class Listening:
    def __init__(
        self, session: LocalSession, activity: SpeechDetector, transcribe: Transcribe
    ) -> None:
        self.session = session
        self.activity = activity
        self.transcribe = transcribe
        self.buffer = InputBuffer()
        self.detector = TurnDetector(session.turn_settings())
        self.resampler = speech_resampler(session.input_format.rate)
        self.queue: asyncio.Queue[_Audio | _Commit | _Clear] = asyncio.Queue()
        self.speech_item_id = ""
        self.speech_start_ms = 0
        self.speculation: tuple[int, asyncio.Future[str]] | None = None
        self.last_turn: asyncio.Task[None] | None = None

    def append(self, samples: Int16Audio, rate: int) -> None:
        self.queue.put_nowait(_Audio(samples, rate))

    def commit(self, event_id: str | None) -> None:
        self.queue.put_nowait(_Commit(event_id))

    def clear(self) -> None:
        self.queue.put_nowait(_Clear())

    async def run(self) -> None:
        while True:
            message = await self.queue.get()
            if isinstance(message, _Commit):
                self._commit_by_hand(message.event_id)
            elif isinstance(message, _Clear):
                self.buffer.reset(self.buffer.end_ms)
                self.detector.reset()
                self.session.emit({"type": "input_audio_buffer.cleared"})
            else:
                probabilities = await run_cpu(self._analyse, message)
                if self.session.turn_detection() is not None:
                    for turn_event in self.detector.feed(probabilities):
                        self._on_turn_event(turn_event)

    def _analyse(self, chunk: _Audio) -> list[float]:
        """Resample, buffer and score one appended chunk (runs in the worker pool)."""
        audio = self._resample(chunk)
        detection = self.session.turn_detection()
        if detection is not None and not self.detector.speaking:
            # Between turns only the prefix padding (and the frames that confirm speech)
            # before what was analysed can become part of the next turn.
            settings = self.detector.settings
            self.buffer.keep_from(
                self.detector.position_ms
                - settings.prefix_padding_ms
                - FRAME_MS * MIN_SPEECH_FRAMES
            )
        self.buffer.append(audio)
        self.buffer.keep_from(self.buffer.end_ms - MAX_BUFFER_MS)
        return self.activity.probabilities(audio) if detection is not None else []

    def _resample(self, chunk: _Audio) -> FloatAudio:
        """The chunk at 16 kHz, continuing the stream; a new input rate starts a new one.

        Done here, in the chunks' order, rather than when the session's format changes:
        audio appended before the change is still in the old format.
        """
        if chunk.rate == self.resampler.from_rate:
            return self.resampler(to_float(chunk.samples))
        # The old stream's last few milliseconds are still in its filter: keep them.
        tail = self.resampler.flush()
        self.resampler = speech_resampler(chunk.rate)
        return np.concatenate([tail, self.resampler(to_float(chunk.samples))])

    def _on_turn_event(self, turn_event: SpeechStarted | SilenceBegan | SpeechStopped) -> None:
        detection = self.session.turn_detection() or {}
        if isinstance(turn_event, SpeechStarted):
            self.speech_item_id = new_id("item")
            self.speech_start_ms = turn_event.audio_start_ms
            self.speculation = None
            self.session.emit(
                {
                    "type": events.SPEECH_STARTED,
                    "audio_start_ms": turn_event.audio_start_ms,
                    "item_id": self.speech_item_id,
                }
            )
            if self.session.response is not None and detection.get("interrupt_response", True):
                self.session.cancel_response("turn_detected")
        elif isinstance(turn_event, SilenceBegan):
            speech = self._speech(turn_event.speech_end_ms)
            future = asyncio.ensure_future(run_cpu(self.transcribe, speech))
            self.speculation = (turn_event.speech_end_ms, future)
        else:
            self.session.emit(
                {
                    "type": events.SPEECH_STOPPED,
                    "audio_end_ms": turn_event.audio_end_ms,
                    "item_id": self.speech_item_id,
                }
            )
            speculation = self.speculation
            self.speculation = None
            transcript: asyncio.Future[str]
            if speculation is not None and speculation[0] == turn_event.speech_end_ms:
                transcript = speculation[1]
            else:
                if speculation is not None:
                    speculation[1].cancel()
                speech = self._speech(turn_event.speech_end_ms)
                transcript = asyncio.ensure_future(run_cpu(self.transcribe, speech))
            duration = turn_event.audio_end_ms - self.speech_start_ms
            self.buffer.keep_from(turn_event.audio_end_ms)
            self._commit(
                self.speech_item_id,
                transcript,
                duration,
                respond=bool(detection.get("create_response", True)),
            )

    def _speech(self, speech_end_ms: int) -> FloatAudio:
        return self.buffer.audio(self.speech_start_ms, speech_end_ms + TRANSCRIBE_TAIL_MS)

    def _commit_by_hand(self, event_id: str | None) -> None:
        duration = self.buffer.end_ms - self.buffer.start_ms
        if duration < MIN_COMMIT_MS:
            self.session.error(
                f"Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {duration}ms of audio.",
                "input_audio_buffer_commit_empty",
                event={"event_id": event_id},
            )
            return
        speech = self.buffer.audio()
        self.buffer.reset(self.buffer.end_ms)
        self.detector.reset()
        transcript = asyncio.ensure_future(run_cpu(self.transcribe, speech))
        # A hand commit answers only when the client asks (response.create), or when
        # turn detection is on and would create one.
        detection = self.session.turn_detection()
        respond = bool(detection and detection.get("create_response", True))
        self._commit(self.speech_item_id or new_id("item"), transcript, duration, respond=respond)
        self.speech_item_id = ""

    def _commit(
        self, item_id: str, transcript: asyncio.Future[str], duration_ms: int, *, respond: bool
    ) -> None:
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        self.session.emit(
            {
                "type": events.INPUT_AUDIO_COMMITTED,
                "item_id": item_id,
                "previous_item_id": self.session.conversation.last_item_id,
            }
        )
        self.session.add_item(item)
        self.session.uncharged_audio_ms += duration_ms
        previous = self.last_turn
        self.last_turn = self.session.spawn(
            self._finish_turn(item, transcript, duration_ms, previous, respond=respond),
            "local-turn",
        )

    async def _finish_turn(
        self,
        item: dict[str, Any],
        transcript: asyncio.Future[str],
        duration_ms: int,
        previous: asyncio.Task[None] | None,
        *,
        respond: bool,
    ) -> None:
        text = await transcript
        if previous is not None:
            # Transcripts complete in the order the caller spoke.
            with contextlib.suppress(Exception):
                await previous
        item["content"][0]["transcript"] = text
        self.session.emit(
            {
                "type": events.INPUT_TRANSCRIPTION_COMPLETED,
                "item_id": item["id"],
                "content_index": 0,
                "transcript": text,
                "usage": {"type": "duration", "seconds": round(duration_ms / 1000, 3)},
            }
        )
        # If the caller is already speaking again, answer once they finish, with both.
        # Nothing heard (a cough, a door) is no turn to answer.
        if respond and text and self.session.response is None and not self.detector.speaking:
            self.session.start_response(None)
