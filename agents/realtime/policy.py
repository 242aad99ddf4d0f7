"""The policy every client event passes before it reaches the provider.

Plain Python over one parsed event, so it can be tested with lists of frames and reused
by any transport. An allowed event is forwarded as the client sent it (the frame is never
re-serialised); anything else raises ClientEventRejected, which the broker turns into an
``error`` event while the session goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from agents.realtime import events
from agents.realtime.errors import ClientEventRejected

# Keys of session.update / response.create that carry the agent's configuration: the
# server sets them from the agent, and a client may change them only if the agent allows.
PROTECTED_SESSION_KEYS = frozenset({"instructions", "tools", "model", "prompt", "tool_choice"})
PROTECTED_RESPONSE_KEYS = frozenset({"instructions", "tools", "prompt", "tool_choice"})


@dataclass
class PolicyState:
    """What the policy needs to know about the live session."""

    allow_overrides: bool = False
    max_frame_bytes: int = 256 * 1024
    response_active: bool = False
    # Function calls the platform executes: the client may not answer them.
    server_call_ids: set[str] = field(default_factory=set)


@dataclass
class ClientEvent:
    type: str
    event: dict[str, Any]


def parse_client_frame(frame: str | bytes | None, state: PolicyState) -> ClientEvent:
    """Parse and check one client frame; raises ClientEventRejected with a clear reason."""
    if frame is None:
        raise ClientEventRejected("Empty frame: send one JSON event per message.", "empty_frame")
    if isinstance(frame, bytes):
        raise ClientEventRejected(
            "Binary frames are not supported: send JSON text events.", "binary_frame"
        )
    # Characters are at most 4 bytes: only long or non-ASCII frames need encoding to count.
    size = len(frame) if len(frame) * 4 <= state.max_frame_bytes else len(frame.encode())
    if size > state.max_frame_bytes:
        raise ClientEventRejected(
            f"Event of {size} bytes exceeds the limit of {state.max_frame_bytes} bytes; "
            "send audio in smaller chunks (20-100 ms).",
            "frame_too_large",
        )
    try:
        event = orjson.loads(frame)
    except orjson.JSONDecodeError as error:
        raise ClientEventRejected(f"Malformed JSON: {error}.", "invalid_json") from error
    if not isinstance(event, dict):
        raise ClientEventRejected("An event must be a JSON object.", "invalid_event")
    event_id = event.get("event_id")
    if event_id is not None and not isinstance(event_id, str):
        raise ClientEventRejected("event_id must be a string.", "invalid_event", param="event_id")
    event_type = event.get("type")
    if not isinstance(event_type, str) or not event_type:
        raise ClientEventRejected(
            "The event has no type.", "missing_type", event_id=event_id, param="type"
        )
    if event_type not in events.CLIENT_EVENTS:
        raise ClientEventRejected(
            f"Unknown or unsupported client event type {event_type!r}.",
            "unknown_event_type",
            event_id=event_id,
            param="type",
        )
    check = _CHECKS.get(event_type)
    if check is not None:
        check(event, event_id, state)
    return ClientEvent(type=event_type, event=event)


def _check_append(event: dict[str, Any], event_id: str | None, state: PolicyState) -> None:
    if not isinstance(event.get("audio"), str):
        raise ClientEventRejected(
            "input_audio_buffer.append needs 'audio': base64-encoded audio.",
            "missing_audio",
            event_id=event_id,
            param="audio",
        )


def _check_session_update(event: dict[str, Any], event_id: str | None, state: PolicyState) -> None:
    session = event.get("session")
    if not isinstance(session, dict):
        raise ClientEventRejected(
            "session.update needs a 'session' object.",
            "invalid_session",
            event_id=event_id,
            param="session",
        )
    session_type = session.get("type", "realtime")
    if session_type != "realtime":
        raise ClientEventRejected(
            "Only realtime sessions are supported (session.type must be 'realtime').",
            "invalid_session_type",
            event_id=event_id,
            param="session.type",
        )
    if state.allow_overrides:
        return
    changed = sorted(PROTECTED_SESSION_KEYS & session.keys())
    audio = session.get("audio")
    output = audio.get("output") if isinstance(audio, dict) else None
    if isinstance(output, dict) and "voice" in output:
        changed.append("audio.output.voice")
    if changed:
        raise ClientEventRejected(
            "This agent's configuration is set by the server; the client may not change "
            + ", ".join(changed)
            + ".",
            "session_update_forbidden",
            event_id=event_id,
            param="session." + changed[0],
        )


def _check_item_create(event: dict[str, Any], event_id: str | None, state: PolicyState) -> None:
    item = event.get("item")
    if not isinstance(item, dict):
        raise ClientEventRejected(
            "conversation.item.create needs an 'item' object.",
            "invalid_item",
            event_id=event_id,
            param="item",
        )
    _check_item(item, event_id, state)


def _check_item(item: dict[str, Any], event_id: str | None, state: PolicyState) -> None:
    item_type = item.get("type")
    if item_type == "message":
        role = item.get("role")
        if role == "system" and not state.allow_overrides:
            raise ClientEventRejected(
                "System messages would change the agent's instructions; not allowed here.",
                "system_message_forbidden",
                event_id=event_id,
                param="item.role",
            )
        if role not in ("user", "assistant", "system"):
            raise ClientEventRejected(
                "A message item needs role 'user'.",
                "invalid_item",
                event_id=event_id,
                param="item.role",
            )
    elif item_type == "function_call_output":
        call_id = item.get("call_id")
        if call_id in state.server_call_ids:
            raise ClientEventRejected(
                "This function call is executed by the platform; the client may not answer it.",
                "server_tool_call",
                event_id=event_id,
                param="item.call_id",
            )
    elif item_type == "function_call":
        raise ClientEventRejected(
            "Clients may not create function_call items.",
            "invalid_item",
            event_id=event_id,
            param="item.type",
        )
    else:
        raise ClientEventRejected(
            f"Unsupported item type {item_type!r}.",
            "invalid_item",
            event_id=event_id,
            param="item.type",
        )


def _check_response_create(event: dict[str, Any], event_id: str | None, state: PolicyState) -> None:
    response = event.get("response")
    if response is None:
        return
    if not isinstance(response, dict):
        raise ClientEventRejected(
            "'response' must be an object.", "invalid_response", event_id=event_id
        )
    if not state.allow_overrides:
        changed = sorted(PROTECTED_RESPONSE_KEYS & response.keys())
        if changed:
            raise ClientEventRejected(
                "This agent's configuration is set by the server; a response may not "
                "override " + ", ".join(changed) + ".",
                "response_override_forbidden",
                event_id=event_id,
                param="response." + changed[0],
            )
    # A response's own input items pass the same checks as conversation.item.create.
    items = response.get("input")
    if items is None:
        return
    if not isinstance(items, list):
        raise ClientEventRejected(
            "response.input must be a list of items.", "invalid_response", event_id=event_id
        )
    for item in items:
        if not isinstance(item, dict):
            raise ClientEventRejected(
                "response.input items must be objects.", "invalid_item", event_id=event_id
            )
        if item.get("type") != "item_reference":
            _check_item(item, event_id, state)


def _check_response_cancel(event: dict[str, Any], event_id: str | None, state: PolicyState) -> None:
    if not state.response_active:
        raise ClientEventRejected(
            "There is no response in progress to cancel.",
            "response_cancel_not_active",
            event_id=event_id,
        )


def _check_truncate(event: dict[str, Any], event_id: str | None, state: PolicyState) -> None:
    audio_end_ms = event.get("audio_end_ms")
    if not isinstance(event.get("item_id"), str) or not isinstance(audio_end_ms, int):
        raise ClientEventRejected(
            "conversation.item.truncate needs item_id, content_index and audio_end_ms.",
            "invalid_truncate",
            event_id=event_id,
        )
    if audio_end_ms < 0:
        raise ClientEventRejected(
            "audio_end_ms cannot be negative.",
            "invalid_truncate",
            event_id=event_id,
            param="audio_end_ms",
        )


_CHECKS = {
    events.INPUT_AUDIO_APPEND: _check_append,
    events.SESSION_UPDATE: _check_session_update,
    events.ITEM_CREATE: _check_item_create,
    events.RESPONSE_CREATE: _check_response_create,
    events.RESPONSE_CANCEL: _check_response_cancel,
    events.ITEM_TRUNCATE: _check_truncate,
}
