"""Koe's own answering-machine check on an outbound call: who answered, from how they
started speaking.

A person who picks up says a word or two ("Hello?", "Acme, Anna speaking") and waits; an
answering machine plays a greeting that runs on for several seconds, then falls silent
(or beeps) for the message. So, on the first seconds of the callee's audio (μ-law, 20 ms
frames): a first utterance that ends within ``MACHINE_SPEECH_SECONDS`` is a person
(``human``); one that runs longer is a machine, and its end (``END_SILENCE_SECONDS`` of
quiet) is the moment to leave a message (``machine_end_silence``); nothing said for
``NO_SPEECH_SECONDS`` is ``unknown``. The words are the carriers' (Twilio's AnsweredBy),
so one rule (``views.answering_machine``) serves every verdict.

It is a second opinion beside the carrier's detection, which Koe always asks for: the
first verdict for a call is the one acted on, and a machine found by either is never
acted on twice.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np

from speech.g711 import decode_ulaw

FRAME_BYTES = 160  # 20 ms of 8 kHz μ-law
FRAME_SECONDS = 0.02
SPEECH_RMS = 400.0  # of 16-bit samples: a voice on a phone line, above line noise
MACHINE_SPEECH_SECONDS = 2.4  # longer than a person's first words
END_SILENCE_SECONDS = 0.8  # a pause that ends an utterance (gaps between words are shorter)
NO_SPEECH_SECONDS = 5.0
LONGEST_GREETING_SECONDS = 20.0  # a greeting that never pauses: leave the message anyway

HUMAN = "human"
UNKNOWN = "unknown"
MACHINE_END = "machine_end_silence"
MACHINE_END_OTHER = "machine_end_other"


class GreetingCheck:
    """Feed it the callee's audio as it comes; ``feed`` returns the verdict once, then
    None for ever after."""

    def __init__(self) -> None:
        self.buffer = b""
        self.elapsed = 0.0
        self.speech = 0.0  # the first utterance so far, pauses within it included
        self.quiet = 0.0  # the current run of quiet
        self.verdict: str | None = None

    @property
    def done(self) -> bool:
        return self.verdict is not None

    def feed(self, payload: str) -> str | None:
        if self.verdict is not None:
            return None
        try:
            self.buffer += base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return None
        while len(self.buffer) >= FRAME_BYTES and self.verdict is None:
            frame, self.buffer = self.buffer[:FRAME_BYTES], self.buffer[FRAME_BYTES:]
            self.verdict = self._frame(_rms(frame) >= SPEECH_RMS)
        return self.verdict

    def _frame(self, loud: bool) -> str | None:
        self.elapsed += FRAME_SECONDS
        if loud:
            # Pauses between words belong to the utterance.
            self.speech += (self.quiet + FRAME_SECONDS) if self.speech else FRAME_SECONDS
            self.quiet = 0.0
        else:
            self.quiet += FRAME_SECONDS
        if not self.speech:
            return UNKNOWN if self.elapsed >= NO_SPEECH_SECONDS else None
        if self.quiet >= END_SILENCE_SECONDS:
            return HUMAN if self.speech < MACHINE_SPEECH_SECONDS else MACHINE_END
        if self.speech >= LONGEST_GREETING_SECONDS:
            return MACHINE_END_OTHER
        return None


def _rms(frame: bytes) -> float:
    samples = decode_ulaw(frame).astype(np.float64)
    return float(np.sqrt(np.mean(samples * samples)))
