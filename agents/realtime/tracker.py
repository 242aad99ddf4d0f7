"""Follows one call's server events: transcript, usage, per-turn latency and tool calls.

Plain Python fed with parsed events (the consumer parses each frame once), so the call's
bookkeeping can be unit-tested with lists of events and reused by another transport. It
only buffers what is to be stored; the recorder writes it off the audio path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.realtime import events
from agents.realtime.policy import AddedText, PolicyState


@dataclass
class TranscriptEntry:
    role: str
    text: str
    item_id: str = ""
    tool_name: str = ""
    tool_arguments: str = ""
    latency_ms: int | None = None
    interrupted: bool = False
    typed: bool = False  # sent as text by the client, not heard or spoken


@dataclass
class UsageEntry:
    response_id: str
    usage: dict[str, Any]


@dataclass
class ToolCallRequest:
    call_id: str
    name: str
    arguments: str
    item_id: str = ""


@dataclass
class ProviderFault:
    message: str
    code: str


@dataclass
class Pending:
    """What the tracker recorded since the recorder last took it."""

    transcript: list[TranscriptEntry] = field(default_factory=list)
    usage: list[UsageEntry] = field(default_factory=list)
    interrupted_item_ids: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.transcript or self.usage or self.interrupted_item_ids)


@dataclass
class CallTracker:
    server_tools: frozenset[str]
    policy: PolicyState
    clock: Callable[[], float] = time.monotonic
    transcript: list[TranscriptEntry] = field(default_factory=list)
    latencies_ms: list[int] = field(default_factory=list)
    turn_count: int = 0
    last_activity: float = 0.0
    _speech_ended_at: float | None = None
    _response_has_audio: bool = False
    _response_latency: int | None = None
    _assistant_by_item: dict[str, TranscriptEntry] = field(default_factory=dict)
    # Calls of client-declared functions, awaiting the client's output: name and item id.
    _client_calls: dict[str, tuple[str, str]] = field(default_factory=dict)
    _pending: Pending = field(default_factory=Pending)

    def __post_init__(self) -> None:
        self.last_activity = self.clock()

    def take_pending(self) -> Pending:
        """Hand over what was recorded since the last call, for the recorder to store."""
        pending, self._pending = self._pending, Pending()
        return pending

    def restore_pending(self, pending: Pending) -> None:
        """Put back a batch the recorder could not store, ahead of anything newer."""
        self._pending.transcript[:0] = pending.transcript
        self._pending.usage[:0] = pending.usage
        self._pending.interrupted_item_ids[:0] = pending.interrupted_item_ids

    def client_event(self, event_type: str) -> None:
        if event_type != events.INPUT_AUDIO_APPEND:
            self.last_activity = self.clock()

    def client_added(self, added: list[AddedText]) -> None:
        """Text the client put into the conversation (a typed turn, and where the agent
        allows it, system or assistant messages): the transcript holds it like speech."""
        for text in added:
            if text.role == "user":
                self.turn_count += 1
            self._add(TranscriptEntry(text.role, text.text, text.item_id, typed=True))

    def client_function_output(self, call_id: str, output: str) -> None:
        """The client's answer to a call of a function it declared."""
        self.policy.client_call_ids.discard(call_id)
        name, item_id = self._client_calls.pop(call_id, ("", ""))
        self._add(TranscriptEntry("tool", output, item_id, tool_name=name))

    def server_event(self, event: dict[str, Any]) -> list[ToolCallRequest] | ProviderFault | None:
        """Account for one server event; returns tool calls to run, or a fatal fault."""
        event_type = event.get("type")
        if event_type == events.OUTPUT_AUDIO_DELTA:
            if not self._response_has_audio:
                self._first_audio()
            return None
        if event_type == events.SPEECH_STARTED:
            self.last_activity = self.clock()
        elif event_type in (events.SPEECH_STOPPED, events.INPUT_AUDIO_COMMITTED):
            self.last_activity = self.clock()
            if event_type == events.SPEECH_STOPPED or self._speech_ended_at is None:
                self._speech_ended_at = self.clock()
        elif event_type == events.INPUT_TRANSCRIPTION_COMPLETED:
            self.turn_count += 1
            self._add(TranscriptEntry("user", str(event.get("transcript", "")), _item_id(event)))
        elif event_type in (events.OUTPUT_ITEM_ADDED, events.ITEM_ADDED):
            # Claim server tools' calls as soon as the client can see their call_id, so it
            # cannot answer one before the platform runs it.
            item = event.get("item")
            if (
                isinstance(item, dict)
                and item.get("type") == "function_call"
                and item.get("name") in self.server_tools
                and isinstance(item.get("call_id"), str)
            ):
                self.policy.server_call_ids.add(item["call_id"])
        elif event_type == events.RESPONSE_CREATED:
            self.policy.response_active = True
            self._response_has_audio = False
            self._response_latency = None
        elif event_type in (events.OUTPUT_AUDIO_TRANSCRIPT_DONE, events.OUTPUT_TEXT_DONE):
            text = event.get("transcript", event.get("text", ""))
            entry = TranscriptEntry(
                "assistant", str(text), _item_id(event), latency_ms=self._response_latency
            )
            self._assistant_by_item[entry.item_id] = entry
            self._add(entry)
        elif event_type == events.ITEM_TRUNCATED:
            self._interrupt(_item_id(event))
        elif event_type == events.RESPONSE_DONE:
            return self._response_done(event)
        elif event_type == events.ERROR:
            return _fault(event)
        return None

    def _first_audio(self) -> None:
        self._response_has_audio = True
        self.last_activity = self.clock()
        if self._speech_ended_at is not None:
            latency = round((self.clock() - self._speech_ended_at) * 1000)
            self._response_latency = latency
            self.latencies_ms.append(latency)
            self._speech_ended_at = None

    def _response_done(self, event: dict[str, Any]) -> list[ToolCallRequest] | None:
        self.policy.response_active = False
        self.last_activity = self.clock()
        response = event.get("response")
        if not isinstance(response, dict):
            return None
        usage = response.get("usage")
        if isinstance(usage, dict):
            self._pending.usage.append(UsageEntry(str(response.get("id", "")), usage))
        if response.get("status") == "cancelled":
            for item in response.get("output") or []:
                if isinstance(item, dict):
                    self._interrupt(_item_id(item, key="id"))
        calls = []
        for item in response.get("output") or []:
            if not isinstance(item, dict) or item.get("type") != "function_call":
                continue
            name = str(item.get("name", ""))
            call_id = str(item.get("call_id", ""))
            self._add(
                TranscriptEntry(
                    "tool",
                    "",
                    _item_id(item, key="id"),
                    tool_name=name,
                    tool_arguments=str(item.get("arguments", "")),
                )
            )
            if name in self.server_tools and call_id:
                self.policy.server_call_ids.add(call_id)
                arguments = str(item.get("arguments", ""))
                calls.append(ToolCallRequest(call_id, name, arguments, _item_id(item, key="id")))
            elif call_id:
                # A function the client declared: the client runs it and answers.
                self.policy.client_call_ids.add(call_id)
                self._client_calls[call_id] = (name, _item_id(item, key="id"))
        return calls or None

    def tool_result(self, request: ToolCallRequest, output: str) -> None:
        self._add(TranscriptEntry("tool", output, request.item_id, tool_name=request.name))

    def _add(self, entry: TranscriptEntry) -> None:
        self.transcript.append(entry)
        self._pending.transcript.append(entry)

    def _interrupt(self, item_id: str) -> None:
        entry = self._assistant_by_item.get(item_id)
        if entry is not None and not entry.interrupted:
            entry.interrupted = True
            self._pending.interrupted_item_ids.append(item_id)


def _item_id(event: dict[str, Any], key: str = "item_id") -> str:
    value = event.get(key)
    return value if isinstance(value, str) else ""


def _fault(event: dict[str, Any]) -> ProviderFault | None:
    """Errors about a client event leave the session open; anything else ends the call."""
    error = event.get("error")
    if not isinstance(error, dict):
        return ProviderFault("The provider reported an unknown error.", "provider_error")
    if error.get("type") == "invalid_request_error":
        return None
    return ProviderFault(
        str(error.get("message") or "The provider reported an error."),
        str(error.get("code") or error.get("type") or "provider_error"),
    )
