"""The local session speaks the Realtime protocol: real VAD, Whisper and Piper; a test engine.

Audio in these tests is real speech synthesised by the local voice. Every event the
session emits must validate against the official SDK's ``RealtimeServerEvent``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest

from agents.config import AgentConfig
from agents.realtime.providers.local.session import LocalSession
from speech.audio import PROTOCOL_RATE, SPEECH_RATE, FloatAudio, Int16Audio
from speech.engine import (
    CallFunction,
    EngineError,
    EngineRequest,
    Message,
    Output,
    ResponseEngine,
    Say,
    ToolResult,
)
from speech.tts import Voice, load_voice
from speech.vad import FRAME_SAMPLES, SpeechDetector
from tests.local.helpers import (
    appends,
    assert_valid_server_events,
    audio_of,
    silence,
    utterance,
)
from tools.spec import ToolSpec

Script = Callable[[EngineRequest], list[Output]]


class TestEngine(ResponseEngine):
    """Answers with what ``script`` returns for each request, and remembers the requests."""

    __test__ = False
    name = "test"

    def __init__(self, script: Script, *, pause: float = 0.0) -> None:
        self.script = script
        self.pause = pause
        self.requests: list[EngineRequest] = []

    async def respond(self, request: EngineRequest) -> AsyncIterator[Output]:
        self.requests.append(request)
        for output in self.script(request):
            if self.pause:
                await asyncio.sleep(self.pause)
            yield output


def echo(request: EngineRequest) -> list[Output]:
    said = [
        turn.text for turn in request.history if isinstance(turn, Message) and turn.role == "user"
    ]
    return [Say(f"You said {said[-1]}" if said else "Hello there.")]


class Client:
    """Drives a LocalSession the way the broker does: frames in, frames out."""

    def __init__(
        self, engine: ResponseEngine, config: AgentConfig | None = None, **stages: Any
    ) -> None:
        config = config or AgentConfig(voice="joe")
        voice = stages.pop("voice", None) or load_voice()
        self.session = LocalSession(config, engine=engine, voice=voice, **stages)
        self.events: list[dict[str, Any]] = []
        self._frames = aiter(self.session)

    async def send(self, event: dict[str, Any] | str) -> None:
        await self.session.send(event if isinstance(event, str) else json.dumps(event))

    async def until(self, event_type: str, timeout: float = 20) -> list[dict[str, Any]]:
        seen = []
        async with asyncio.timeout(timeout):
            while True:
                event = json.loads(await anext(self._frames))
                seen.append(event)
                self.events.append(event)
                if event["type"] == event_type:
                    return seen

    async def speak(self, text: str, **kwargs: int) -> None:
        for frame in appends(utterance(text, **kwargs)):
            await self.send(frame)

    async def close(self) -> None:
        await self.session.close()
        assert_valid_server_events(self.events)


def run(scenario: Callable[[], Any]) -> Any:
    return asyncio.run(scenario())


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


class Loudness(SpeechDetector):
    """A voice-activity stage of the test's own: a frame with sound in it is speech."""

    def __init__(self) -> None:
        self.pending = np.zeros(0, dtype=np.float32)

    def probabilities(self, samples: FloatAudio) -> list[float]:
        audio = np.concatenate([self.pending, samples])
        complete = len(audio) - len(audio) % FRAME_SAMPLES
        self.pending = audio[complete:]
        frames = audio[:complete].reshape(-1, FRAME_SAMPLES)
        return [1.0 if np.abs(frame).max() > 0.05 else 0.0 for frame in frames]


class Tones(Voice):
    """A text-to-speech stage that says every sentence as a short tone."""

    def __init__(self) -> None:
        self.said: list[str] = []

    def speak(self, sentence: str) -> Int16Audio:
        self.said.append(sentence)
        return np.full(PROTOCOL_RATE // 5, 1000, dtype=np.int16)


def test_every_stage_of_the_pipeline_can_be_replaced() -> None:
    heard: list[int] = []

    def transcribe(samples: FloatAudio) -> str:
        heard.append(len(samples))
        return "a table for two"

    voice = Tones()

    async def scenario() -> list[dict[str, Any]]:
        client = Client(TestEngine(echo), transcribe=transcribe, activity=Loudness(), voice=voice)
        await client.until("session.created")
        tone = (np.sin(np.arange(PROTOCOL_RATE) * 0.06) * 8000).astype("<i2").tobytes()
        for frame in appends(silence(300) + tone + silence(1200)):
            await client.send(frame)
        seen = await client.until("response.done")
        await client.close()
        return seen

    seen = run(scenario)
    transcript = next(e for e in seen if e["type"].endswith("transcription.completed"))
    assert transcript["transcript"] == "a table for two"
    assert heard and 0.8 * SPEECH_RATE < heard[-1] < 1.6 * SPEECH_RATE  # about the 1 s tone
    assert voice.said == ["You said a table for two"]
    audio = "".join(e["delta"] for e in seen if e["type"] == "response.output_audio.delta")
    assert len(base64.b64decode(audio)) == 2 * PROTOCOL_RATE // 5


def test_a_spoken_turn_is_detected_transcribed_and_answered_in_speech() -> None:
    async def scenario() -> list[dict[str, Any]]:
        client = Client(TestEngine(echo))
        assert (await client.until("session.created"))[0]["session"]["model"] == "koe-local"
        await client.speak("What time do you open on Sunday?")
        seen = await client.until("response.done")
        await client.close()
        return seen

    seen = run(scenario)
    kinds = types(seen)
    assert kinds[:3] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
    ]
    started, stopped = seen[0], seen[1]
    assert started["item_id"] == stopped["item_id"]
    assert 0 <= started["audio_start_ms"] <= 300
    assert stopped["audio_end_ms"] > started["audio_start_ms"] + 1000
    transcript = next(e for e in seen if e["type"].endswith("transcription.completed"))
    assert "open on sunday" in transcript["transcript"].lower()
    assert transcript["item_id"] == started["item_id"]
    done = seen[-1]["response"]
    assert done["status"] == "completed"
    spoken = done["output"][0]["content"][0]["transcript"]
    assert spoken.lower().startswith("you said what time do you open")
    audio = audio_of(seen)
    assert len(audio) > 24000  # more than a second of speech
    assert abs(audio.astype(int)).max() > 1000  # not silence
    usage = done["usage"]
    assert usage["input_token_details"]["audio_tokens"] > 10
    assert usage["output_token_details"]["audio_tokens"] == pytest.approx(len(audio) / 1200, abs=2)


def test_the_agent_speaking_is_interrupted_when_the_caller_talks() -> None:
    slow = "This is a long answer. " * 6

    async def scenario() -> tuple[list[dict[str, Any]], TestEngine]:
        engine = TestEngine(lambda request: [Say(s) for s in slow.split(". ") if s], pause=0.3)
        client = Client(engine)
        await client.send({"type": "response.create"})
        await client.until("response.output_audio.delta")
        await client.speak("Stop, please wait.")
        seen = await client.until("response.done")
        await client.close()
        return seen, engine

    seen, _engine = run(scenario)
    assert "input_audio_buffer.speech_started" in types(seen)
    done = seen[-1]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert done["output"][0]["status"] == "incomplete"
    # what was said before the interruption is still reported, not dropped
    partial = next(e for e in seen if e["type"] == "response.output_audio_transcript.done")
    assert partial["transcript"].startswith("This is a long answer")
    assert len(partial["transcript"]) < len(slow)


def test_without_turn_detection_the_client_commits_and_asks_for_the_response() -> None:
    async def scenario() -> list[dict[str, Any]]:
        engine = TestEngine(echo)
        client = Client(engine)
        await client.send(
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
            }
        )
        await client.until("session.updated")
        await client.send({"type": "input_audio_buffer.commit", "event_id": "evt_empty"})
        error = (await client.until("error"))[-1]
        assert error["error"]["code"] == "input_audio_buffer_commit_empty"
        assert error["error"]["event_id"] == "evt_empty"
        for frame in appends(utterance("Do you have parking?")):
            await client.send(frame)
        await client.send({"type": "input_audio_buffer.commit"})
        seen = await client.until("conversation.item.input_audio_transcription.completed")
        assert "speech_started" not in " ".join(types(seen))
        # Metadata rides along (clients match their request to the response by it).
        await client.send({"type": "response.create", "response": {"metadata": {"ask": "1"}}})
        await client.send({"type": "response.create", "event_id": "evt_twice"})
        seen += await client.until("response.done")
        await client.send({"type": "response.cancel", "event_id": "evt_none"})
        seen += await client.until("error")
        await client.close()
        return seen

    seen = run(scenario)
    assert (
        "parking" in next(e for e in seen if e["type"].endswith("completed"))["transcript"].lower()
    )
    errors = [e["error"] for e in seen if e["type"] == "error"]
    assert [e["code"] for e in errors] == [
        "conversation_already_has_active_response",
        "response_cancel_not_active",
    ]
    assert errors[-1]["message"].startswith("Cancellation failed")  # OpenAI's words
    assert seen[-2]["type"] == "response.done"
    for kind in ("response.created", "response.done"):
        assert next(e for e in seen if e["type"] == kind)["response"]["metadata"] == {"ask": "1"}


def test_a_function_call_ends_the_response_and_its_output_feeds_the_next() -> None:
    def script(request: EngineRequest) -> list[Output]:
        if isinstance(request.history[-1], ToolResult):
            return [Say(json.loads(request.history[-1].output)["message"])]
        return [Say("One moment."), CallFunction("book_table", {"party_size": 2, "time": "19:00"})]

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], TestEngine]:
        engine = TestEngine(script)
        client = Client(
            engine,
            AgentConfig(
                voice="joe",
                tools=(ToolSpec(name="book_table", example_phrases=("book a table",)),),
            ),
        )
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "tools": [
                        {
                            "type": "function",
                            "name": "book_table",
                            "description": "Books.",
                            "parameters": {"type": "object", "properties": {}},
                        }
                    ],
                },
            }
        )
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "A table please"}],
                },
            }
        )
        await client.send({"type": "response.create"})
        first = await client.until("response.done")
        call = first[-1]["response"]["output"][1]
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "function_call_output",
                    "call_id": call["call_id"],
                    "output": json.dumps({"message": "Booked for two at seven."}),
                },
            }
        )
        await client.send({"type": "response.create"})
        second = await client.until("response.done")
        await client.close()
        return first, second, engine

    first, second, engine = run(scenario)
    output = first[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["message", "function_call"]
    assert json.loads(output[1]["arguments"]) == {"party_size": 2, "time": "19:00"}
    arguments_done = next(e for e in first if e["type"] == "response.function_call_arguments.done")
    assert arguments_done["call_id"] == output[1]["call_id"]
    assert engine.requests[0].tools[0].example_phrases == ("book a table",)
    assert (
        second[-1]["response"]["output"][0]["content"][0]["transcript"]
        == "Booked for two at seven."
    )


def test_bad_client_events_get_errors_and_the_session_goes_on() -> None:
    async def scenario() -> list[dict[str, Any]]:
        client = Client(TestEngine(echo))
        await client.send("{not json")
        await client.send(
            {"type": "input_audio_buffer.append", "audio": "###", "event_id": "evt_b64"}
        )
        await client.send({"type": "nonsense.event"})
        await client.send(
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"output": {"format": {"type": "audio/pcma"}}},
                },
            }
        )
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": "item_missing",
                "content_index": 0,
                "audio_end_ms": 10,
            }
        )
        await client.send({"type": "conversation.item.delete", "item_id": "item_missing"})
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "hello"}],
                },
            }
        )
        await client.send({"type": "response.create"})
        seen = await client.until("response.done")
        await client.close()
        return seen

    seen = run(scenario)
    codes = [e["error"]["code"] for e in seen if e["type"] == "error"]
    assert codes == [
        "invalid_json",
        "invalid_audio",
        "invalid_value",
        "unsupported_audio_format",
        "item_truncate_invalid_item_id",
        "item_not_found",
    ]
    assert all(e["error"]["type"] == "invalid_request_error" for e in seen if e["type"] == "error")
    assert seen[-1]["response"]["status"] == "completed"


def test_truncation_keeps_only_what_the_caller_heard() -> None:
    async def scenario() -> TestEngine:
        engine = TestEngine(
            lambda r: [Say("First sentence here. Second sentence there. Third one.")]
        )
        client = Client(engine)
        await client.send({"type": "response.create"})
        done = (await client.until("response.done"))[-1]
        item_id = done["response"]["output"][0]["id"]
        await client.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": 300,
            }
        )
        truncated = (await client.until("conversation.item.truncated"))[-1]
        assert truncated["audio_end_ms"] == 300
        await client.send({"type": "response.create"})
        await client.until("response.done")
        await client.close()
        return engine

    engine = run(scenario)
    heard = [turn for turn in engine.requests[1].history if isinstance(turn, Message)]
    assert heard == [Message("assistant", "First sentence here.")]


def test_an_engine_failure_fails_the_response_not_the_session() -> None:
    class Broken(ResponseEngine):
        name = "broken"
        calls = 0

        async def respond(self, request: EngineRequest) -> AsyncIterator[Output]:
            Broken.calls += 1
            if Broken.calls == 1:
                raise EngineError("The language model server is unreachable.")
            yield Say("Back again.")

    async def scenario() -> list[dict[str, Any]]:
        client = Client(Broken())
        await client.send({"type": "response.create"})
        seen = await client.until("response.done")
        await client.send({"type": "response.create"})
        seen += await client.until("response.done")
        await client.close()
        return seen

    seen = run(scenario)
    done = [e["response"] for e in seen if e["type"] == "response.done"]
    assert done[0]["status"] == "failed"
    assert "unreachable" in done[0]["status_details"]["error"]["message"]
    assert done[1]["status"] == "completed"
    assert "error" not in types(seen)  # nothing that would end the call at the broker


def test_text_only_responses_when_the_session_asks_for_text() -> None:
    async def scenario() -> list[dict[str, Any]]:
        client = Client(TestEngine(lambda r: [Say("Just text. No audio.")]))
        await client.send(
            {
                "type": "session.update",
                "session": {"type": "realtime", "output_modalities": ["text"]},
            }
        )
        await client.send({"type": "response.create"})
        seen = await client.until("response.done")
        await client.close()
        return seen

    seen = run(scenario)
    assert "response.output_audio.delta" not in types(seen)
    assert (
        next(e for e in seen if e["type"] == "response.output_text.done")["text"]
        == "Just text. No audio."
    )


def test_noise_and_silence_make_no_turn() -> None:
    async def scenario() -> list[dict[str, Any]]:
        client = Client(TestEngine(echo))
        for frame in appends(silence(2000)):
            await client.send(frame)
        await client.send({"type": "conversation.item.retrieve", "item_id": "nope"})
        seen = await client.until("error")
        await client.close()
        return seen

    seen = run(scenario)
    assert types(seen) == ["session.created", "error"]


def test_several_function_calls_can_end_one_response() -> None:
    async def scenario() -> list[dict[str, Any]]:
        engine = TestEngine(
            lambda r: [
                CallFunction("current_time"),
                CallFunction("lookup", {"q": "x"}),
                Say("ignored"),
            ]
        )
        client = Client(engine)
        await client.send({"type": "response.create"})
        seen = await client.until("response.done")
        await client.close()
        return seen

    seen = run(scenario)
    output = seen[-1]["response"]["output"]
    assert [(item["type"], item["name"]) for item in output] == [
        ("function_call", "current_time"),
        ("function_call", "lookup"),
    ]
    assert len({item["call_id"] for item in output}) == 2
    assert "response.output_audio.delta" not in types(seen)


def test_a_turn_with_no_words_gets_no_answer() -> None:
    async def scenario() -> list[dict[str, Any]]:
        engine = TestEngine(echo)
        client = Client(engine)
        for frame in appends(silence(600)):
            await client.send(frame)
        await client.send({"type": "input_audio_buffer.commit"})  # server_vad would answer
        seen = await client.until("conversation.item.input_audio_transcription.completed")
        await client.send({"type": "response.create"})
        seen += await client.until("response.done")
        await client.close()
        assert len(engine.requests) == 1  # only the one asked for
        return seen

    seen = run(scenario)
    transcribed = next(e for e in seen if e["type"].endswith("transcription.completed"))
    assert transcribed["transcript"] == ""
    assert types(seen).count("response.created") == 1


def test_a_response_cancelled_mid_sentence_reports_only_what_was_said() -> None:
    """The sentence being synthesised when the caller cancels was never heard: neither
    response.done nor the transcript claims it (it used to report the whole plan)."""
    import threading

    voice = load_voice()
    second_started, release = threading.Event(), threading.Event()

    class SlowSecondSentence:
        sample_rate = getattr(voice, "sample_rate", 24000)

        def speak(self, text: str) -> Any:
            if text.startswith("Second"):
                second_started.set()
                release.wait(5)
            return voice.speak(text)

    async def scenario() -> list[dict[str, Any]]:
        engine = TestEngine(lambda request: [Say("First sentence here."), Say("Second one.")])
        client = Client(engine)
        client.session.voice = SlowSecondSentence()  # type: ignore[assignment]
        await client.send({"type": "response.create"})
        await client.until("response.output_audio_transcript.delta")
        await asyncio.to_thread(second_started.wait, 5)
        await client.send({"type": "response.cancel"})
        seen = await client.until("response.done")
        release.set()
        await client.close()
        return seen

    seen = run(scenario)
    done = seen[-1]["response"]
    assert done["status"] == "cancelled"
    said = next(e for e in seen if e["type"] == "response.output_audio_transcript.done")
    assert said["transcript"] == "First sentence here."
    assert done["output"][0]["content"][0]["transcript"] == "First sentence here."
