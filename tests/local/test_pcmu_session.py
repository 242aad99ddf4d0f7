"""A local session on a phone line: G.711 μ-law (``audio/pcmu``, 8 kHz) in and out.

The stages are the test's own (a loudness detector, a fixed transcript, a voice that
speaks tones), so what is checked is the format: how long the audio is, in milliseconds,
on both sides, whatever its rate.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from speech.audio import PCM16, PCMU, PROTOCOL_RATE, SPEECH_RATE, Int16Audio, wire_format
from speech.engine import Message, Say
from speech.g711 import G711_RATE, decode_ulaw, encode_ulaw
from speech.tts import Voice
from tests.local.helpers import appends, silence
from tests.local.test_session import Client, Loudness, TestEngine, echo, run, types

PHONE = {"type": "audio/pcmu"}
BYTES_PER_MS = G711_RATE // 1000  # one μ-law byte a sample


def phone_session(**directions: dict[str, Any]) -> dict[str, Any]:
    audio = {direction: {"format": audio_format} for direction, audio_format in directions.items()}
    return {"type": "session.update", "session": {"type": "realtime", "audio": audio}}


def mulaw_tone(milliseconds: int) -> bytes:
    time = np.arange(BYTES_PER_MS * milliseconds) / G711_RATE
    return encode_ulaw((8000 * np.sin(2 * np.pi * 300 * time)).astype(np.int16))


def mulaw_silence(milliseconds: int) -> bytes:
    return encode_ulaw(np.zeros(BYTES_PER_MS * milliseconds, dtype=np.int16))


def mulaw_appends(audio: bytes, size: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "input_audio_buffer.append",
            "audio": base64.b64encode(audio[i : i + size]).decode(),
        }
        for i in range(0, len(audio), size)
    ]


class ToneVoice(Voice):
    """Says every sentence as a 440 Hz tone of ``milliseconds`` at 24 kHz, as voices speak."""

    def __init__(self, milliseconds: int) -> None:
        self.milliseconds = milliseconds
        self.said: list[str] = []

    def speak(self, sentence: str) -> Int16Audio:
        self.said.append(sentence)
        time = np.arange(PROTOCOL_RATE * self.milliseconds // 1000) / PROTOCOL_RATE
        return (8000 * np.sin(2 * np.pi * 440 * time)).astype(np.int16)


def deltas(events: list[dict[str, Any]]) -> list[bytes]:
    return [
        base64.b64decode(event["delta"])
        for event in events
        if event["type"] == "response.output_audio.delta"
    ]


def test_a_phone_call_is_heard_and_answered_in_mulaw() -> None:
    heard: list[int] = []

    def transcribe(samples: Any) -> str:
        heard.append(len(samples))
        return "a table for two"

    voice = ToneVoice(500)

    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        client = Client(TestEngine(echo), transcribe=transcribe, activity=Loudness(), voice=voice)
        await client.until("session.created")
        await client.send(phone_session(input=PHONE, output=PHONE))
        updated = (await client.until("session.updated"))[-1]
        # A second of speech after a second of quiet, in frames of any size (165 bytes:
        # not a whole number of 20 ms packets, nor of PCM16 samples).
        speech = mulaw_silence(1000) + mulaw_tone(1000) + mulaw_silence(1200)
        for frame in mulaw_appends(speech, 165):
            await client.send(frame)
        seen = await client.until("response.done")
        await client.close()
        return updated, seen

    updated, seen = run(scenario)
    audio = updated["session"]["audio"]
    assert audio["input"]["format"] == PHONE
    assert audio["output"]["format"] == PHONE
    assert "error" not in types(seen)

    # On the session's clock in milliseconds: the tone is 1000-2000 ms; speech starts
    # the prefix padding (300 ms) before it and stops the silence (500 ms) after it.
    started = next(e for e in seen if e["type"] == "input_audio_buffer.speech_started")
    stopped = next(e for e in seen if e["type"] == "input_audio_buffer.speech_stopped")
    assert 600 <= started["audio_start_ms"] <= 760
    assert 2450 <= stopped["audio_end_ms"] <= 2600
    assert heard and 1.2 * SPEECH_RATE < heard[-1] < 1.8 * SPEECH_RATE  # padding + 1 s + tail
    transcribed = next(e for e in seen if e["type"].endswith("transcription.completed"))
    spoken_seconds = (stopped["audio_end_ms"] - started["audio_start_ms"]) / 1000
    assert transcribed["usage"]["seconds"] == spoken_seconds

    # The answer: 500 ms of μ-law, 8 bytes a millisecond, in deltas of 200 ms.
    assert voice.said == ["You said a table for two"]
    pieces = deltas(seen)
    assert [len(piece) for piece in pieces] == [1600, 1600, 800]
    answer = decode_ulaw(b"".join(pieces)).astype(float)
    spectrum = np.abs(np.fft.rfft(answer))
    assert abs(np.argmax(spectrum) * G711_RATE / len(answer) - 440) < 5
    assert 7000 < np.abs(answer).max() < 9000  # the voice's level, not PCM16 bytes
    done = seen[-1]["response"]
    assert done["audio"]["output"]["format"] == PHONE
    assert done["usage"]["output_token_details"]["audio_tokens"] == 500 // 50
    assert done["usage"]["input_token_details"]["audio_tokens"] == int(spoken_seconds * 10)


def test_truncation_counts_milliseconds_of_mulaw_audio() -> None:
    async def scenario() -> TestEngine:
        engine = TestEngine(lambda r: [Say("First sentence here. Second sentence there.")])
        client = Client(engine, voice=ToneVoice(500))
        await client.send(phone_session(output=PHONE))
        await client.send({"type": "response.create"})
        done = (await client.until("response.done"))[-1]
        assert sum(len(piece) for piece in deltas(client.events)) == 2 * 500 * BYTES_PER_MS
        item_id = done["response"]["output"][0]["id"]
        # 450 ms: the first sentence (0-500 ms) was playing, the second not yet started.
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": 450,
            }
        )
        await client.until("conversation.item.truncated")
        await client.send({"type": "response.create"})
        await client.until("response.done")
        await client.close()
        return engine

    engine = run(scenario)
    heard = [turn for turn in engine.requests[1].history if isinstance(turn, Message)]
    assert heard == [Message("assistant", "First sentence here.")]


def test_each_direction_has_its_own_format_and_the_input_can_change_mid_call() -> None:
    async def scenario() -> list[dict[str, Any]]:
        client = Client(
            TestEngine(echo), transcribe=lambda s: "hi", activity=Loudness(), voice=ToneVoice(200)
        )
        # 500 ms of quiet as PCM16 at 24 kHz, then the phone's μ-law: the clock runs on.
        for frame in appends(silence(500)):
            await client.send(frame)
        await client.send(phone_session(input=PHONE))
        updated = (await client.until("session.updated"))[-1]
        assert updated["session"]["audio"]["input"]["format"] == PHONE
        assert updated["session"]["audio"]["output"]["format"] == {
            "type": "audio/pcm",
            "rate": 24000,
        }
        speech = mulaw_silence(500) + mulaw_tone(1000) + mulaw_silence(1200)
        for event in mulaw_appends(speech, 160):
            await client.send(event)
        seen = await client.until("response.done")
        await client.close()
        return seen

    seen = run(scenario)
    started = next(e for e in seen if e["type"] == "input_audio_buffer.speech_started")
    assert 600 <= started["audio_start_ms"] <= 760  # the tone began at 1000 ms
    # The answer is still PCM16 at 24 kHz: 200 ms is 9600 bytes.
    assert [len(piece) for piece in deltas(seen)] == [9600]
    assert seen[-1]["response"]["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}


def test_a_manual_commit_of_mulaw_measures_its_milliseconds() -> None:
    async def scenario() -> list[dict[str, Any]]:
        client = Client(TestEngine(echo), transcribe=lambda s: "hi", voice=ToneVoice(200))
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"format": PHONE, "turn_detection": None}},
                },
            }
        )
        for frame in mulaw_appends(mulaw_tone(1000), 160):
            await client.send(frame)
        await client.send({"type": "input_audio_buffer.commit"})
        seen = await client.until("conversation.item.input_audio_transcription.completed")
        await client.close()
        return seen

    seen = run(scenario)
    # A second of audio, less the few milliseconds still in the resampler's filter.
    assert 0.97 <= seen[-1]["usage"]["seconds"] <= 1.0


def test_formats_the_voice_cannot_speak_are_refused() -> None:
    async def scenario() -> list[dict[str, Any]]:
        client = Client(TestEngine(echo), voice=ToneVoice(200))
        await client.send(phone_session(output={"type": "audio/pcma"}))
        await client.send(phone_session(input={"type": "audio/pcm", "rate": 16000}))
        await client.send(phone_session(input=PHONE, output={"type": "audio/pcma"}))
        await client.send({"type": "session.update", "session": {"type": "realtime"}})
        seen = await client.until("session.updated")
        await client.close()
        return seen

    seen = run(scenario)
    errors = [e["error"] for e in seen if e["type"] == "error"]
    # The API itself allows PCM at 24 kHz only; A-law is valid but not spoken here.
    assert [(e["code"], e["param"]) for e in errors] == [
        ("unsupported_audio_format", "session.audio.output.format"),
        ("invalid_value", "session.audio.input.format.rate"),
        ("unsupported_audio_format", "session.audio.output.format"),
    ]
    # A refused update changes nothing, not even its acceptable half.
    audio = seen[-1]["session"]["audio"]
    assert audio["input"]["format"] == audio["output"]["format"] == PCM16.description()


def test_wire_formats_by_their_session_descriptions() -> None:
    assert wire_format({"type": "audio/pcmu"}) is PCMU
    assert wire_format({"type": "audio/pcm"}) is PCM16
    assert wire_format({"type": "audio/pcm", "rate": 24000}) is PCM16
    assert wire_format({"type": "audio/pcm", "rate": 16000}) is None
    assert wire_format({"type": "audio/pcma"}) is None
    assert wire_format("audio/pcmu") is None
    assert PCMU.decode(base64.b64encode(b"\xff\x7f\x00").decode()).tolist() == [0, 0, -32124]
    assert PCMU.milliseconds(1600) == PCM16.milliseconds(9600) == 200
    speech = ToneVoice(200).speak("")
    assert len(PCMU.encode_speech(speech)) == 1600
    assert PCM16.encode_speech(speech) == speech.astype("<i2").tobytes()
