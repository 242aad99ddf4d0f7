"""A protocol-faithful fake of OpenAI's Realtime API (GA) for tests: a real WebSocket server.

It authenticates like OpenAI (``Authorization: Bearer``) and Azure (``api-key`` on
``/openai/v1/realtime``), detects speech in PCM16 audio with a simple energy VAD, and
answers each caller turn from a script with the GA event sequence (response.created,
output items, ``response.output_audio.delta`` and transcript deltas, ``response.done``
with a full usage object), including function calls. Faults can be switched on: refused
handshakes, an abrupt close mid-response, a fatal ``error`` event.

Event shapes follow the ``openai`` package's ``openai.types.realtime`` models; the tests
validate everything a client receives against ``RealtimeServerEvent``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import itertools
import json
import math
import struct
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from openai.types.realtime import RealtimeClientEvent, ResponseCreateEventWithReferencesParam
from pydantic import TypeAdapter, ValidationError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

SAMPLE_RATE = 24000
FRAME_SAMPLES = SAMPLE_RATE // 50  # 20 ms


@dataclass
class FunctionCall:
    name: str
    arguments: dict[str, Any]


@dataclass
class Turn:
    """One caller turn and the agent's answer (or a function call, then the answer)."""

    user: str
    assistant: str = ""
    function_call: FunctionCall | None = None
    assistant_after_call: str = ""


def tone(milliseconds: int, amplitude: int = 8000, frequency: float = 440.0) -> bytes:
    """PCM16 24 kHz mono sine: what the fake speaks, and what tests say to it."""
    count = SAMPLE_RATE * milliseconds // 1000
    return struct.pack(
        f"<{count}h",
        *(
            int(amplitude * math.sin(2 * math.pi * frequency * i / SAMPLE_RATE))
            for i in range(count)
        ),
    )


def silence(milliseconds: int) -> bytes:
    return bytes(2 * SAMPLE_RATE * milliseconds // 1000)


def default_session(model: str) -> dict[str, Any]:
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": "sess_fake",
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "prompt": None,
        "expires_at": 0,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": SAMPLE_RATE},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                    "idle_timeout_ms": None,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": SAMPLE_RATE},
                "voice": "alloy",
                "speed": 1.0,
            },
        },
        "include": None,
    }


# The SDK's own types for what a client may send (GA): every frame the fake receives is
# checked against them, as OpenAI checks it.
CLIENT_EVENT: TypeAdapter[Any] = TypeAdapter(RealtimeClientEvent)
# response.create whose input names earlier items by id ({"type": "item_reference"}): the
# SDK types it apart from RealtimeClientEvent.
RESPONSE_WITH_REFERENCES: TypeAdapter[Any] = TypeAdapter(ResponseCreateEventWithReferencesParam)


def _shape_problem(event: Any) -> str | None:
    try:
        CLIENT_EVENT.validate_python(event)
    except ValidationError as invalid:
        if isinstance(event, dict) and event.get("type") == "response.create":
            try:
                RESPONSE_WITH_REFERENCES.validate_python(event)
                return None
            except ValidationError:
                pass
        first = invalid.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"][1:])
        return f"Invalid client event ({where}): {first['msg']}."
    return None


def _event_id(event: Any) -> str | None:
    value = event.get("event_id") if isinstance(event, dict) else None
    return value if isinstance(value, str) else None


# Session fields where null turns a feature off; anywhere else null means "not given".
NULL_MEANS_OFF = frozenset(
    {"turn_detection", "noise_reduction", "transcription", "tracing", "prompt"}
)


def _merge(target: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if value is None and key not in NULL_MEANS_OFF:
            continue
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


@dataclass
class _Session:
    """The state of one client connection."""

    socket: ServerConnection
    session: dict[str, Any]
    audio: bytearray = field(default_factory=bytearray)
    audio_ms: int = 0
    speaking: bool = False
    speech_start_ms: int = 0
    silence_ms: int = 0
    faulty: bool = True  # subject to close_after_events
    item_id: str = ""
    last_item_id: str | None = None
    pending_after_call: str = ""
    sent: int = 0
    closed: bool = False


class FakeRealtimeServer:
    def __init__(
        self,
        script: list[Turn] | None = None,
        *,
        expected_key: str = "sk-test-upstream",
        refuse_connections: bool = False,
        close_after_events: int | None = None,
        error_on: str | None = None,
        speech_rms: float = 1000.0,
        handshake_delay: float = 0.0,
        close_sessions: int | None = None,
        expires_in: float | None = None,
    ) -> None:
        self.script = list(script or [])
        self.expected_key = expected_key
        self.refuse_connections = refuse_connections
        self.close_after_events = close_after_events
        self.error_on = error_on
        self.speech_rms = speech_rms
        self.handshake_delay = handshake_delay  # seconds before it answers the upgrade
        # close_after_events applies to this many sessions, the first ones (None: every
        # session): a drop the next session recovers from.
        self.close_sessions = close_sessions
        self.expires_in = expires_in  # session.created's expires_at, this far ahead
        self._live: list[_Session] = []
        self.connections: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self.function_outputs: list[dict[str, Any]] = []
        self.invalid: list[dict[str, Any]] = []  # events that failed the SDK's client types
        self.faults: list[str] = []  # events this fake failed on (a bug in the fake)
        self.port = 0
        self._turns = iter(self.script)
        self._answered: set[str] = set()  # the caller turns the script has answered
        self._current: Turn | None = None  # the caller turn being answered
        self._ids = itertools.count(1)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- addresses -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL for an OpenAI-style client (it appends /realtime?model=...)."""
        return f"ws://127.0.0.1:{self.port}/v1"

    @property
    def azure_endpoint(self) -> str:
        """An Azure resource endpoint (clients use {endpoint}/openai/v1/realtime)."""
        return f"http://127.0.0.1:{self.port}"

    # --- running ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            process_request=self._check_request,
            max_size=None,
            compression=None,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> FakeRealtimeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start_in_thread(self) -> FakeRealtimeServer:
        """Serve from a daemon thread with its own event loop (for synchronous tests)."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="fake-realtime")
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self.close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    # --- handshake -------------------------------------------------------------------------
    async def _check_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        await asyncio.sleep(self.handshake_delay)  # a slow region, a busy upstream
        if self.refuse_connections:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Service unavailable\n")
        path = urlsplit(request.path).path
        if path == "/openai/v1/realtime":
            presented = request.headers.get("api-key", "")
        elif path == "/v1/realtime":
            presented = request.headers.get("Authorization", "").removeprefix("Bearer ")
        else:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not found\n")
        if presented != self.expected_key:
            return connection.respond(HTTPStatus.UNAUTHORIZED, "Incorrect API key provided\n")
        return None

    # --- session ---------------------------------------------------------------------------
    async def _handle(self, socket: ServerConnection) -> None:
        request = socket.request
        assert request is not None
        parts = urlsplit(request.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        self.connections.append(
            {"path": parts.path, "query": query, "headers": dict(request.headers.raw_items())}
        )
        state = _Session(socket, default_session(query.get("model", "gpt-realtime")))
        state.faulty = self.close_sessions is None or len(self.connections) <= self.close_sessions
        if self.expires_in is not None:
            state.session["expires_at"] = int(time.time() + self.expires_in)
        self._live.append(state)
        await self._send(state, {"type": "session.created", "session": state.session})
        try:
            async for frame in socket:
                try:
                    event = json.loads(frame)
                except ValueError:
                    await self._send(state, self._error("Invalid JSON.", "invalid_json"))
                    continue
                self.received.append(event)
                problem = _shape_problem(event)
                if problem is not None:
                    # As OpenAI: refused, the session goes on. Tests assert Koe never
                    # forwards such an event (``invalid`` stays empty).
                    self.invalid.append(event)
                    await self._send(
                        state,
                        self._error(problem, "invalid_value", event_id=_event_id(event)),
                    )
                    continue
                if self.error_on and event.get("type") == self.error_on:
                    await self._send(
                        state,
                        self._error(
                            "The server had an error while processing your request.",
                            "server_error",
                            error_type="server_error",
                        ),
                    )
                    await socket.close(1011)
                    return
                try:
                    await self._dispatch(state, event)
                except ConnectionClosed:
                    raise
                except Exception as error:  # a bug in this fake: recorded for the test
                    self.faults.append(f"{event.get('type')}: {error!r}")
                    await self._send(
                        state,
                        self._error(f"The fake could not handle this: {error!r}", "fake_fault"),
                    )
                if state.closed:
                    return
        except Exception:  # a client closing mid-stream simply ends its session
            return

    async def _dispatch(self, state: _Session, event: dict[str, Any]) -> None:
        kind = event.get("type")
        client_event_id = event.get("event_id")
        if kind == "session.update":
            session = event.get("session") or {}
            if session.get("type", "realtime") != "realtime":
                await self._send(
                    state,
                    self._error(
                        "Invalid session type.",
                        "invalid_value",
                        param="session.type",
                        event_id=client_event_id,
                    ),
                )
                return
            _merge(state.session, session)
            await self._send(state, {"type": "session.updated", "session": state.session})
        elif kind == "input_audio_buffer.append":
            try:
                audio = base64.b64decode(event["audio"], validate=True)
            except (binascii.Error, ValueError):  # not base64, or not even ASCII
                await self._send(
                    state,
                    self._error(
                        "Invalid 'audio'. Expected base64-encoded audio bytes.",
                        "invalid_value",
                        param="audio",
                        event_id=client_event_id,
                    ),
                )
                return
            await self._append(state, audio)
        elif kind == "input_audio_buffer.commit":
            if not state.audio:
                await self._send(
                    state,
                    self._error(
                        "Error committing input audio buffer: buffer too small.",
                        "input_audio_buffer_commit_empty",
                        event_id=client_event_id,
                    ),
                )
                return
            await self._commit(state, auto_respond=False)
        elif kind == "input_audio_buffer.clear":
            state.audio.clear()
            await self._send(state, {"type": "input_audio_buffer.cleared"})
        elif kind == "conversation.item.create":
            await self._create_item(state, event.get("item") or {})
        elif kind == "response.create":
            await self._respond(state, event.get("response") or {})
        elif kind == "response.cancel":
            await self._send(
                state,
                self._error(
                    "Cancellation failed: no active response found.",
                    "response_cancel_not_active",
                    event_id=client_event_id,
                ),
            )
        elif kind == "conversation.item.truncate":
            await self._send(
                state,
                {
                    "type": "conversation.item.truncated",
                    "item_id": event.get("item_id", ""),
                    "content_index": event.get("content_index", 0),
                    "audio_end_ms": event.get("audio_end_ms", 0),
                },
            )
        else:
            await self._send(
                state,
                self._error(
                    f"Invalid value: '{kind}'.",
                    "invalid_value",
                    param="type",
                    event_id=client_event_id,
                ),
            )

    # --- input audio -----------------------------------------------------------------------
    async def _append(self, state: _Session, audio: bytes) -> None:
        state.audio.extend(audio)
        detection = state.session["audio"]["input"].get("turn_detection")
        silence_needed = (detection or {}).get("silence_duration_ms", 500)
        usable = len(audio) - len(audio) % 2
        samples = struct.unpack(f"<{usable // 2}h", audio[:usable])
        for start in range(0, len(samples), FRAME_SAMPLES):
            frame = samples[start : start + FRAME_SAMPLES]
            frame_ms = len(frame) * 1000 // SAMPLE_RATE
            rms = math.sqrt(sum(s * s for s in frame) / len(frame)) if frame else 0.0
            if detection is None:
                state.audio_ms += frame_ms
                continue
            if rms >= self.speech_rms:
                state.silence_ms = 0
                if not state.speaking:
                    state.speaking = True
                    state.speech_start_ms = state.audio_ms
                    state.item_id = self._id("item")
                    await self._send(
                        state,
                        {
                            "type": "input_audio_buffer.speech_started",
                            "audio_start_ms": state.audio_ms,
                            "item_id": state.item_id,
                        },
                    )
            elif state.speaking:
                state.silence_ms += frame_ms
                if state.silence_ms >= silence_needed:
                    state.speaking = False
                    await self._send(
                        state,
                        {
                            "type": "input_audio_buffer.speech_stopped",
                            "audio_end_ms": state.audio_ms,
                            "item_id": state.item_id,
                        },
                    )
                    await self._commit(
                        state, auto_respond=bool(detection.get("create_response", True))
                    )
            state.audio_ms += frame_ms

    async def _commit(self, state: _Session, *, auto_respond: bool) -> None:
        item_id = state.item_id or self._id("item")
        state.item_id = ""
        audio_ms = len(state.audio) * 1000 // (2 * SAMPLE_RATE)
        state.audio.clear()
        await self._send(
            state,
            {
                "type": "input_audio_buffer.committed",
                "item_id": item_id,
                "previous_item_id": state.last_item_id,
            },
        )
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "user",
            "status": "completed",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        await self._item_added_and_done(state, item)
        turn = self._next_turn()
        transcript = turn.user if turn else ""
        await self._send(
            state,
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": transcript,
                "usage": {"type": "duration", "seconds": round(audio_ms / 1000, 3)},
            },
        )
        self._current = turn
        if auto_respond:
            await self._respond(state, {}, input_audio_ms=audio_ms)

    def _next_turn(self) -> Turn | None:
        turn = next(self._turns, None)
        if turn is not None:
            self._answered.add(turn.user)
        return turn

    # --- items and responses -----------------------------------------------------------------
    async def _create_item(self, state: _Session, item: dict[str, Any]) -> None:
        item = {
            **item,
            "id": item.get("id") or self._id("item"),
            "object": "realtime.item",
            "status": "completed",
        }
        if item.get("type") == "function_call_output":
            self.function_outputs.append(item)
        elif item.get("type") == "message" and item.get("role") == "user":
            # A message repeating a turn already answered is the conversation's history
            # (a broker carrying it over to a new session), not the caller's next turn.
            content = item.get("content") or [{}]
            if content[0].get("text") not in self._answered:
                self._current = self._next_turn()
        await self._item_added_and_done(state, item)

    async def _item_added_and_done(self, state: _Session, item: dict[str, Any]) -> None:
        await self._send(
            state,
            {
                "type": "conversation.item.added",
                "previous_item_id": state.last_item_id,
                "item": item,
            },
        )
        await self._send(
            state,
            {
                "type": "conversation.item.done",
                "previous_item_id": state.last_item_id,
                "item": item,
            },
        )
        state.last_item_id = item["id"]

    async def _respond(
        self, state: _Session, options: dict[str, Any], input_audio_ms: int = 0
    ) -> None:
        response_id = self._id("resp")
        instructions = options.get("instructions")
        turn = self._current
        text = ""
        function_call: FunctionCall | None = None
        if instructions:
            # The broker's greeting asks to say a sentence exactly; say what follows ": ".
            text = instructions.rsplit(": ", 1)[-1]
        elif state.pending_after_call:
            text, state.pending_after_call = state.pending_after_call, ""
        elif turn is not None and turn.function_call is not None:
            function_call = turn.function_call
            state.pending_after_call = turn.assistant_after_call
            self._current = None
        elif turn is not None:
            text = turn.assistant
            self._current = None
        response: dict[str, Any] = {
            "id": response_id,
            "object": "realtime.response",
            "status": "in_progress",
            "status_details": None,
            "output": [],
            "conversation_id": "conv_fake",
            "output_modalities": ["audio"],
            "max_output_tokens": "inf",
            "audio": {
                "output": {"format": {"type": "audio/pcm", "rate": SAMPLE_RATE}, "voice": "alloy"}
            },
            "usage": None,
            "metadata": None,
        }
        await self._send(state, {"type": "response.created", "response": copy.deepcopy(response)})
        if function_call is not None:
            item = await self._function_call(state, response_id, function_call)
        else:
            item = await self._spoken(state, response_id, text)
        if state.closed:
            return
        response.update(
            status="completed",
            output=[item],
            usage=self._usage(input_audio_ms, text, function_call),
        )
        await self._send(state, {"type": "response.done", "response": response})

    async def _spoken(self, state: _Session, response_id: str, text: str) -> dict[str, Any]:
        item_id = self._id("item")
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        where = {"response_id": response_id, "item_id": item_id, "output_index": 0}
        await self._send(
            state,
            {
                "type": "response.output_item.added",
                "response_id": response_id,
                "output_index": 0,
                "item": item,
            },
        )
        await self._send(
            state,
            {
                "type": "conversation.item.added",
                "previous_item_id": state.last_item_id,
                "item": item,
            },
        )
        part = {"type": "audio", "transcript": ""}
        await self._send(
            state,
            {"type": "response.content_part.added", **where, "content_index": 0, "part": part},
        )
        words = text.split(" ") if text else []
        # About 100 ms of audio per 20 characters of text, as a voice would take.
        for _ in range(max(1, len(text) // 20)):
            delta = base64.b64encode(tone(100)).decode()
            await self._send(
                state,
                {
                    "type": "response.output_audio.delta",
                    **where,
                    "content_index": 0,
                    "delta": delta,
                },
            )
        for index, word in enumerate(words):
            delta = word if index == 0 else " " + word
            await self._send(
                state,
                {
                    "type": "response.output_audio_transcript.delta",
                    **where,
                    "content_index": 0,
                    "delta": delta,
                },
            )
            if state.closed:
                return item
        await self._send(state, {"type": "response.output_audio.done", **where, "content_index": 0})
        await self._send(
            state,
            {
                "type": "response.output_audio_transcript.done",
                **where,
                "content_index": 0,
                "transcript": text,
            },
        )
        part = {"type": "audio", "transcript": text}
        await self._send(
            state, {"type": "response.content_part.done", **where, "content_index": 0, "part": part}
        )
        item = {
            **item,
            "status": "completed",
            "content": [{"type": "output_audio", "transcript": text}],
        }
        await self._output_item_done(state, response_id, item)
        return item

    async def _function_call(
        self, state: _Session, response_id: str, call: FunctionCall
    ) -> dict[str, Any]:
        item_id, call_id = self._id("item"), self._id("call")
        arguments = json.dumps(call.arguments)
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": call.name,
            "call_id": call_id,
            "arguments": "",
        }
        await self._send(
            state,
            {
                "type": "response.output_item.added",
                "response_id": response_id,
                "output_index": 0,
                "item": item,
            },
        )
        await self._send(
            state,
            {
                "type": "conversation.item.added",
                "previous_item_id": state.last_item_id,
                "item": item,
            },
        )
        where = {
            "response_id": response_id,
            "item_id": item_id,
            "output_index": 0,
            "call_id": call_id,
        }
        half = len(arguments) // 2
        for piece in (arguments[:half], arguments[half:]):
            await self._send(
                state, {"type": "response.function_call_arguments.delta", **where, "delta": piece}
            )
        await self._send(
            state,
            {
                "type": "response.function_call_arguments.done",
                **where,
                "name": call.name,
                "arguments": arguments,
            },
        )
        item = {**item, "status": "completed", "arguments": arguments}
        await self._output_item_done(state, response_id, item)
        return item

    async def _output_item_done(
        self, state: _Session, response_id: str, item: dict[str, Any]
    ) -> None:
        """The two events that close an output item, in the API's order."""
        done = {"response_id": response_id, "output_index": 0, "item": item}
        await self._send(state, {"type": "response.output_item.done", **done})
        await self._send(
            state,
            {
                "type": "conversation.item.done",
                "previous_item_id": state.last_item_id,
                "item": item,
            },
        )
        state.last_item_id = item["id"]

    # --- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _usage(input_audio_ms: int, text: str, call: FunctionCall | None) -> dict[str, Any]:
        # Deterministic, in the API's proportions: caller audio ~1 token per 100 ms,
        # agent audio ~1 per 50 ms (100 ms of audio per 20 characters), text ~1 per 4.
        input_audio = input_audio_ms // 100
        input_text = 120
        cached_text = 64
        output_text = (
            max(1, len(text) // 4) if text else len(json.dumps(call.arguments)) // 4 if call else 0
        )
        output_audio = max(1, len(text) // 20) * 2 if text else 0
        input_tokens = input_text + input_audio
        output_tokens = output_text + output_audio
        return {
            "total_tokens": input_tokens + output_tokens,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "input_token_details": {
                "text_tokens": input_text,
                "audio_tokens": input_audio,
                "image_tokens": 0,
                "cached_tokens": cached_text,
                "cached_tokens_details": {
                    "text_tokens": cached_text,
                    "audio_tokens": 0,
                    "image_tokens": 0,
                },
            },
            "output_token_details": {"text_tokens": output_text, "audio_tokens": output_audio},
        }

    def _id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    def _error(
        self,
        message: str,
        code: str,
        *,
        error_type: str = "invalid_request_error",
        param: str | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        return {
            "type": "error",
            "error": {
                "type": error_type,
                "code": code,
                "message": message,
                "param": param,
                "event_id": event_id,
            },
        }

    # --- faults a test triggers ----------------------------------------------------------
    async def drop(self) -> None:
        """Every live session's connection breaks (no close frame), as on a network error."""
        for state in self._live:
            state.closed = True
            state.socket.transport.abort()
        self._live.clear()

    async def expire(self) -> None:
        """Every live session reaches its time limit, as OpenAI ends one: an ``error`` of
        code ``session_expired``, then a close (1001). Quoted in livekit/agents#2358 and
        twilio-samples/speech-assistant-openai-realtime-api-python#10."""
        for state in self._live:
            await self._send(
                state,
                self._error(
                    "Your session hit the maximum duration of 60 minutes.", "session_expired"
                ),
            )
            state.closed = True
            await state.socket.close(1001, "session expired")
        self._live.clear()

    async def _send(self, state: _Session, event: dict[str, Any]) -> None:
        if state.closed:
            return
        event = {"event_id": self._id("event"), **event}
        await state.socket.send(json.dumps(event))
        state.sent += 1
        if not state.faulty:
            return
        if self.close_after_events is not None and state.sent >= self.close_after_events:
            # An abrupt end: no close frame, like a dropped connection.
            state.closed = True
            state.socket.transport.abort()
