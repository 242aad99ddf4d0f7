"""One local provider session: the Realtime protocol, spoken by a pipeline in this process.

It takes the client events the broker forwards and answers with exactly the GA server
events the ``openai`` provider relays, so the broker, transcripts, tools and usage cannot
tell the difference. Audio in goes through voice activity detection (turns, barge-in),
then Whisper; a response engine decides what to say; Piper speaks it sentence by sentence.

Three kinds of tasks share the session's event stream:
- the input task handles appended audio, commits and clears strictly in order, and a
  turn task per committed utterance transcribes it (turns finish in order) and may start
  a response: the caller's side, ``listening.Listening``;
- at most one response task at a time (the API's rule), cancellable by barge-in.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson

from agents.config import AgentConfig
from agents.realtime import client_events, events
from agents.realtime.errors import ClientEventRejected
from agents.realtime.providers.base import ProviderConnection, ProviderError
from agents.realtime.providers.local.conversation import Conversation, SpokenPart, new_id
from agents.realtime.providers.local.listening import Listening
from agents.realtime.providers.local.responses import Response, ResponseEvents
from agents.realtime.providers.local.session_state import (
    default_session,
    engine_request,
    merge_session,
)
from speech import stt
from speech.audio import PCM16, AudioFormatError, WireFormat, wire_format
from speech.engine import (
    CallFunction,
    EngineError,
    ResponseEngine,
)
from speech.runtime import run_cpu
from speech.text import sentences
from speech.tts import Voice
from speech.vad import (
    SpeechDetector,
    TurnSettings,
    VoiceActivity,
)

logger = logging.getLogger("koe.local")

# Audio deltas of 200 ms: small enough to start playing at once, few enough frames.
AUDIO_DELTA_MS = 200


class LocalSession(ResponseEvents, ProviderConnection):
    def __init__(
        self,
        config: AgentConfig,
        *,
        engine: ResponseEngine,
        voice: Voice,
        transcribe: stt.Transcribe = stt.transcribe,
        activity: SpeechDetector | None = None,
    ) -> None:
        # The pipeline's stages, each replaceable: voice activity (VAD) -> speech to
        # text -> the response engine -> text to speech.
        self.config = config
        self.engine = engine
        self.voice = voice
        self.session = default_session(config)
        # The formats of the audio frames in and out, as the session (its client) chose.
        self.input_format: WireFormat = PCM16
        self.output_format: WireFormat = PCM16
        self.conversation = Conversation()
        self.response: Response | None = None
        self.closed = False
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.uncharged_audio_ms = 0  # caller audio not yet charged to a response
        self._tasks: set[asyncio.Task[Any]] = set()
        self.listening = Listening(self, activity or VoiceActivity(), transcribe)
        self.spawn(self.listening.run(), "local-input")
        self.emit({"type": events.SESSION_CREATED, "session": copy.deepcopy(self.session)})

    # --- ProviderConnection ----------------------------------------------------------------
    async def send(self, frame: str) -> None:
        if self.closed:
            raise ProviderError("The local session is closed.")
        try:
            event = orjson.loads(frame)
        except orjson.JSONDecodeError:
            self.error("The event is not valid JSON.", "invalid_json")
            return
        if not isinstance(event, dict):
            self.error("An event must be a JSON object.", "invalid_event")
            return
        if event.get("type") not in events.CLIENT_EVENTS:
            self.error(f"Invalid value: {event.get('type')!r}.", "invalid_value", param="type")
            return
        try:
            # The API's own checks: a malformed event is refused, never half-applied.
            client_events.validate(event)
        except ClientEventRejected as rejected:
            self.error(rejected.message, rejected.code, param=rejected.param, event=event)
            return
        try:
            self._dispatch(event)
        except AudioFormatError as error:
            self.error(str(error), "invalid_audio", param="audio", event=event)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[str]:
        while True:
            frame = await self._outbox.get()
            if frame is None:
                return
            yield frame

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await self.engine.aclose()
        self._outbox.put_nowait(None)

    # --- client events ---------------------------------------------------------------------
    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == events.SESSION_UPDATE:
            self._update_session(event)
        elif kind == events.INPUT_AUDIO_APPEND:
            samples = self.input_format.decode(str(event.get("audio") or ""))
            self.listening.append(samples, self.input_format.rate)
        elif kind == events.INPUT_AUDIO_COMMIT:
            self.listening.commit(event.get("event_id"))
        elif kind == events.INPUT_AUDIO_CLEAR:
            self.listening.clear()
        elif kind == events.OUTPUT_AUDIO_CLEAR:
            self.cancel_response("client_cancelled")
        elif kind == events.ITEM_CREATE:
            self._create_item(event)
        elif kind == events.ITEM_TRUNCATE:
            self._truncate(event)
        elif kind == events.ITEM_DELETE:
            item_id = str(event.get("item_id") or "")
            if self.conversation.delete(item_id):
                self.emit({"type": "conversation.item.deleted", "item_id": item_id})
            else:
                self.error(f"Item {item_id!r} not found.", "item_not_found", event=event)
        elif kind == events.ITEM_RETRIEVE:
            item = self.conversation.get(str(event.get("item_id") or ""))
            if item is None:
                self.error("Item not found.", "item_not_found", event=event)
            else:
                self.emit({"type": "conversation.item.retrieved", "item": copy.deepcopy(item)})
        elif kind == events.RESPONSE_CREATE:
            if self.response is not None:
                self.error(
                    "Conversation already has an active response in progress.",
                    "conversation_already_has_active_response",
                    event=event,
                )
                return
            options = event.get("response") or {}
            options = options if isinstance(options, dict) else {}
            instructions, metadata = options.get("instructions"), options.get("metadata")
            self.start_response(
                instructions if isinstance(instructions, str) else None,
                metadata if isinstance(metadata, dict) else None,
            )
        elif kind == events.RESPONSE_CANCEL:
            if self.response is None:
                self.error(
                    "Cancellation failed: no active response found.",
                    "response_cancel_not_active",
                    event=event,
                )
            else:
                self.cancel_response("client_cancelled")
        else:
            self.error(f"Invalid value: {kind!r}.", "invalid_value", param="type", event=event)

    def _update_session(self, event: dict[str, Any]) -> None:
        update = event.get("session")
        if not isinstance(update, dict) or update.get("type", "realtime") != "realtime":
            self.error("Invalid session type.", "invalid_value", param="session.type", event=event)
            return
        audio = update.get("audio") or {}
        chosen: dict[str, WireFormat] = {}
        for direction in ("input", "output"):
            description = (audio.get(direction) or {}).get("format")
            if description is None:
                continue
            wire = wire_format(description)
            if wire is None:
                self.error(
                    "The built-in provider speaks audio/pcm at 24 kHz and audio/pcmu only.",
                    "unsupported_audio_format",
                    param=f"session.audio.{direction}.format",
                    event=event,
                )
                return
            chosen[direction] = wire
        merge_session(self.session, update)
        for direction, wire in chosen.items():
            # A format replaces the previous one whole: μ-law has no rate to keep from PCM.
            self.session["audio"][direction]["format"] = wire.description()
        # Audio appended from now on is in the new format (the listening stage follows
        # its rate in order), and so is the next sentence spoken.
        self.input_format = chosen.get("input", self.input_format)
        self.output_format = chosen.get("output", self.output_format)
        self.listening.detector.settings = self.turn_settings()
        self.emit({"type": events.SESSION_UPDATED, "session": copy.deepcopy(self.session)})

    def turn_detection(self) -> dict[str, Any] | None:
        detection = self.session["audio"]["input"].get("turn_detection")
        return detection if isinstance(detection, dict) else None

    def turn_settings(self) -> TurnSettings:
        return TurnSettings.from_session(self.turn_detection() or {})

    def _create_item(self, event: dict[str, Any]) -> None:
        item = event.get("item")
        if not isinstance(item, dict) or item.get("type") not in (
            "message",
            "function_call",
            "function_call_output",
        ):
            self.error("Invalid item.", "invalid_value", param="item.type", event=event)
            return
        if item.get("type") == "function_call_output" and not isinstance(item.get("output"), str):
            self.error("A function_call_output needs an output string.", "invalid_value",
                        param="item.output", event=event)  # fmt: skip
            return
        item = {
            **copy.deepcopy(item),
            "id": item.get("id") or new_id("item"),
            "object": "realtime.item",
            "status": "completed",
        }
        self.add_item(item)

    def _truncate(self, event: dict[str, Any]) -> None:
        item_id = str(event.get("item_id") or "")
        audio_end_ms = event.get("audio_end_ms")
        if not isinstance(audio_end_ms, int) or not self.conversation.truncate(
            item_id, audio_end_ms
        ):
            self.error("Invalid item to truncate.", "item_truncate_invalid_item_id", event=event)
            return
        self.emit(
            {
                "type": events.ITEM_TRUNCATED,
                "item_id": item_id,
                "content_index": int(event.get("content_index") or 0),
                "audio_end_ms": audio_end_ms,
            }
        )

    # --- responses -------------------------------------------------------------------------
    def start_response(
        self, instructions: str | None, metadata: dict[str, Any] | None = None
    ) -> None:
        response = Response(
            id=new_id("resp"),
            instructions=instructions,
            input_audio_ms=self.uncharged_audio_ms,
            metadata=metadata,
        )
        self.uncharged_audio_ms = 0
        self.response = response
        self.emit({"type": events.RESPONSE_CREATED, "response": self._response_object(response)})
        response.task = self.spawn(self._run_response(response), "local-response")

    def cancel_response(self, reason: str) -> None:
        response = self.response
        if response is None or response.task is None or response.cancel_reason:
            return
        response.cancel_reason = reason
        response.task.cancel()

    async def _run_response(self, response: Response) -> None:
        status = "completed"
        try:
            await self._generate(response)
        except asyncio.CancelledError:
            if self.closed or not response.cancel_reason:
                raise
            status = "cancelled"
        except EngineError as error:
            logger.warning("local response failed: %s", error)
            status = "failed"
            response.error = {"type": "server_error", "code": "engine_error", "message": str(error)}
        except Exception as error:  # a failing turn must not end the session
            logger.exception("local response failed")
            status = "failed"
            response.error = {
                "type": "server_error",
                "code": "engine_error",
                "message": repr(error),
            }
        self._close_message(response, "completed" if status == "completed" else "incomplete")
        self.response = None
        done = self._response_object(response, status=status)
        self.emit({"type": events.RESPONSE_DONE, "response": done})

    async def _generate(self, response: Response) -> None:
        request = engine_request(self.config, self.session, self.conversation, response)
        outputs = self.engine.respond(request)
        try:
            calling = False
            async for output in outputs:
                if isinstance(output, CallFunction):
                    # Several calls may end one response, as with the API; the outputs
                    # come back as items, and the next response speaks about them.
                    self._close_message(response, "completed")
                    self._function_call(response, output)
                    calling = True
                elif not calling:
                    for sentence in sentences(output.text):
                        await self._speak(response, sentence)
        finally:
            # Close the engine's generator at once (an HTTP stream to a language model),
            # also when the caller interrupted.
            if isinstance(outputs, AsyncGenerator):
                await outputs.aclose()

    async def _speak(self, response: Response, sentence: str) -> None:
        item = response.message or self._open_message(response)
        where = {
            "response_id": response.id,
            "item_id": item["id"],
            "output_index": len(response.output) - 1,
            "content_index": 0,
        }
        text_delta = sentence if not response.transcript else " " + sentence
        if not self._speaks_audio():
            response.transcript.append(sentence)
            response.output_text_chars += len(text_delta)
            self.emit({"type": "response.output_text.delta", **where, "delta": text_delta})
            return
        output_format = self.output_format
        audio = await run_cpu(self._synthesise, sentence, output_format)
        # Only now is the sentence produced: a response cancelled while it was being
        # synthesised reports (and the transcript keeps) what was said, not what was planned.
        response.transcript.append(sentence)
        response.output_text_chars += len(text_delta)
        duration = output_format.milliseconds(len(audio))
        self.conversation.spoken.setdefault(item["id"], []).append(
            SpokenPart(sentence, response.audio_ms, duration)
        )
        response.audio_ms += duration
        self.emit({"type": events.OUTPUT_AUDIO_TRANSCRIPT_DELTA, **where, "delta": text_delta})
        delta_bytes = output_format.sample_bytes * output_format.rate * AUDIO_DELTA_MS // 1000
        for start in range(0, len(audio), delta_bytes):
            delta = base64.b64encode(audio[start : start + delta_bytes]).decode()
            self.emit({"type": events.OUTPUT_AUDIO_DELTA, **where, "delta": delta})

    def _synthesise(self, sentence: str, output_format: WireFormat) -> bytes:
        """The sentence spoken, in the output format (in the worker pool: all CPU work)."""
        return output_format.encode_speech(self.voice.speak(sentence))

    def error(
        self,
        message: str,
        code: str,
        *,
        param: str | None = None,
        event: dict[str, Any] | None = None,
    ) -> None:
        # invalid_request_error: about one client event; the session goes on.
        self.emit(
            {
                "type": events.ERROR,
                "error": {
                    "type": "invalid_request_error",
                    "code": code,
                    "message": message,
                    "param": param,
                    "event_id": (event or {}).get("event_id"),
                },
            }
        )

    def emit(self, event: dict[str, Any]) -> None:
        if self.closed:
            return
        self._outbox.put_nowait(orjson.dumps({"event_id": new_id("event"), **event}).decode())

    def spawn(self, coroutine: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or self.closed:
            return
        error = task.exception()
        if error is not None:
            logger.error("local session task %s failed: %r", task.get_name(), error)
            if task.get_name() == "local-input":
                # Without its input task the session cannot hear: end it visibly.
                self.emit(
                    {
                        "type": events.ERROR,
                        "error": {
                            "type": "server_error",
                            "code": "local_pipeline_failed",
                            "message": "The built-in speech pipeline failed.",
                            "param": None,
                            "event_id": None,
                        },
                    }
                )
