"""The policy every client event passes before it reaches the provider.

Plain Python over one parsed event, so it can be tested with lists of frames and reused
by any transport. First the event's shape is checked against the GA schema
(``client_events``); then the settings it carries are reconciled with the agent's,
field by field, by the table below:

- ``CLIENT``: the client's to choose (audio formats, turn detection, noise reduction,
  speed, truncation); passed on.
- ``OVERRIDABLE``: the agent's (instructions, tools, voice, output modalities, token
  limits), which a client may change only where the agent allows overrides. Functions a
  client declares for itself (which it runs) are added beside the agent's tools where the
  agent allows client functions for this caller.
- ``AGENT``: the agent's, always (model, input transcription, tracing).

A protected field that is absent, null, empty or equal to the agent's value is a no-op,
never an error: real clients and frameworks send them. One with a different value is
dropped and the rest of the event applied (the ``session.updated`` that follows shows
what is in force), unless the agent is strict: then the event is refused. A refusal is a
ClientEventRejected, which the broker turns into an ``error`` event while the session
goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson

from agents.realtime import client_events, events
from agents.realtime.errors import ClientEventRejected


class Who(Enum):
    CLIENT = "client"
    OVERRIDABLE = "agent, unless it allows overrides"
    AGENT = "agent"


@dataclass(frozen=True)
class AgentSettings:
    """The agent's values that a client's settings are compared with."""

    agent_id: str = ""
    model: str = ""
    voice: str = ""
    instructions: str = ""
    tool_names: frozenset[str] = frozenset()
    tool_definitions: tuple[dict[str, Any], ...] = ()  # as the provider's session has them
    transcription: dict[str, Any] | None = None
    output_modalities: tuple[str, ...] = ("audio",)


@dataclass(frozen=True)
class Rule:
    who: Who
    # Values that mean "the agent's own" (besides absent and null): a no-op.
    is_agents: Callable[[Any, AgentSettings], bool] = lambda value, agent: False


def _empty(value: Any, agent: AgentSettings) -> bool:
    return value in ("", [], {})


def _same_model(value: Any, agent: AgentSettings) -> bool:
    return value in (agent.agent_id, agent.model)


def _same_instructions(value: Any, agent: AgentSettings) -> bool:
    return value in ("", agent.instructions)


def _agents_tools(value: Any, agent: AgentSettings) -> bool:
    # [] means "the agent's tools"; so does a list naming only the agent's own functions.
    return isinstance(value, list) and all(
        isinstance(tool, dict) and tool.get("name") in agent.tool_names for tool in value
    )


def _unlimited(value: Any) -> bool:
    return value == "inf"  # pragma: no mutate ("is" for "==": a literal string is interned)


def _same_voice(value: Any, agent: AgentSettings) -> bool:
    return value == agent.voice


def _same_modalities(value: Any, agent: AgentSettings) -> bool:
    return isinstance(value, list) and tuple(value) == agent.output_modalities


def _same_transcription(value: Any, agent: AgentSettings) -> bool:
    return value == agent.transcription or (
        isinstance(value, dict)
        and isinstance(agent.transcription, dict)
        and all(agent.transcription.get(key) == item for key, item in value.items())
    )


# The table docs/integrate/realtime.md documents: for each field a client may send, whose it is.
# What a session and a response both carry (the response's apply to it alone).
_MODEL_SETTINGS: dict[str, Rule] = {
    "instructions": Rule(Who.OVERRIDABLE, _same_instructions),
    "tools": Rule(Who.OVERRIDABLE, _agents_tools),
    "tool_choice": Rule(Who.OVERRIDABLE, lambda value, agent: value == "auto"),
    "prompt": Rule(Who.OVERRIDABLE),
    "output_modalities": Rule(Who.OVERRIDABLE, _same_modalities),
    "max_output_tokens": Rule(Who.OVERRIDABLE, lambda value, agent: _unlimited(value)),
    "reasoning": Rule(Who.OVERRIDABLE, _empty),
    "parallel_tool_calls": Rule(Who.OVERRIDABLE),
    "audio.output.format": Rule(Who.CLIENT),
    "audio.output.voice": Rule(Who.OVERRIDABLE, _same_voice),
}
SESSION_RULES: dict[str, Rule] = {
    **_MODEL_SETTINGS,
    "model": Rule(Who.AGENT, _same_model),
    "tracing": Rule(Who.AGENT),
    "include": Rule(Who.CLIENT),
    "truncation": Rule(Who.CLIENT),
    "audio.input.format": Rule(Who.CLIENT),
    "audio.input.noise_reduction": Rule(Who.CLIENT),
    "audio.input.turn_detection": Rule(Who.CLIENT),
    "audio.input.transcription": Rule(Who.AGENT, _same_transcription),
    "audio.output.speed": Rule(Who.CLIENT),
}
RESPONSE_RULES: dict[str, Rule] = {
    **_MODEL_SETTINGS,
    "conversation": Rule(Who.CLIENT),
    "metadata": Rule(Who.CLIENT),
    "input": Rule(Who.CLIENT),  # its items pass the same checks as conversation.item.create
}


@dataclass
class PolicyState:
    """What the policy needs to know about the agent and the live session."""

    agent: AgentSettings = field(default_factory=AgentSettings)
    allow_overrides: bool = False
    # The client may declare functions of its own, which it runs (beside the agent's).
    client_functions: bool = False
    strict: bool = False  # refuse a changed protected setting instead of dropping it
    max_frame_bytes: int = 256 * 1024
    response_active: bool = False
    # Function calls the platform executes: the client may not answer them.
    server_call_ids: set[str] = field(default_factory=set)
    # Function calls of functions the client declared: the client answers them.
    client_call_ids: set[str] = field(default_factory=set)


@dataclass
class AddedText:
    """Text a client put into the conversation: it belongs in the transcript."""

    role: str
    text: str
    item_id: str = ""


@dataclass
class ClientEvent:
    type: str
    event: dict[str, Any]
    changed: bool = False  # the policy removed fields: forward ``event``, not the frame
    ignored: bool = False  # forward nothing (a client's answer to a server-run tool call)
    dropped: list[str] = field(default_factory=list)  # fields removed, for the call's log
    added: list[AddedText] = field(default_factory=list)
    # A client-declared function's output: (call_id, output).
    function_output: tuple[str, str] | None = None

    def frame(self, original: str) -> str:
        return orjson.dumps(self.event).decode() if self.changed else original


def parse_client_frame(frame: str | bytes | None, state: PolicyState) -> ClientEvent:
    """Parse and check one client frame; raises ClientEventRejected with a clear reason."""
    if frame is None:
        raise ClientEventRejected("Empty frame: send one JSON event per message.", "empty_frame")
    if isinstance(frame, bytes):
        raise ClientEventRejected(
            "Binary frames are not supported: send JSON text events.", "binary_frame"
        )
    # Characters are at most 4 bytes: only long or non-ASCII frames need encoding to count.
    size = len(frame)
    if size * 4 > state.max_frame_bytes:  # pragma: no mutate (">=" encodes, same answer)
        size = len(frame.encode())
    if size > state.max_frame_bytes:
        raise oversized(size, state.max_frame_bytes)
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
    client_event = ClientEvent(type=event_type, event=event)
    if event_type == events.INPUT_AUDIO_APPEND and _plain_append(event):
        return client_event  # the hot path: 50 a second per call, already checked
    client_events.validate(event)
    check = _CHECKS.get(event_type)
    if check is not None:
        check(client_event, event_id, state)
    return client_event


def oversized(size: int | None, limit: int) -> ClientEventRejected:
    """The documented refusal of a frame over the limit (also for frames the server drops
    unread: then the size is only known to be over it)."""
    what = f"Event of {size} bytes exceeds" if size else "An event exceeded"
    return ClientEventRejected(
        f"{what} the limit of {limit} bytes; send audio in smaller chunks (20-100 ms).",
        "frame_too_large",
    )


def _plain_append(event: dict[str, Any]) -> bool:
    return isinstance(event.get("audio"), str) and event.keys() <= _APPEND_KEYS


_APPEND_KEYS = frozenset({"type", "event_id", "audio"})


# --- settings ------------------------------------------------------------------------------
def _reconcile(
    client_event: ClientEvent,
    container: dict[str, Any],
    rules: dict[str, Rule],
    prefix: str,
    state: PolicyState,
    forbidden_code: str,
) -> None:
    """Apply the table to ``container`` (a session or a response), in place."""
    changed = []
    skip = {"tools"} if _declare_client_functions(client_event, container, state) else set()
    for path, rule in rules.items():
        if path in skip:
            continue
        parent, key = _locate(container, path)
        if parent is None or key not in parent:
            continue
        value = parent[key]
        if rule.who is Who.CLIENT:
            continue
        if value is None and path != "audio.input.transcription":
            del parent[key]  # null is "not given" (for transcription, null turns it off)
        elif rule.is_agents(value, state.agent):
            del parent[key]  # the agent's own value: nothing to change
        elif rule.who is Who.OVERRIDABLE and state.allow_overrides:
            continue
        else:
            changed.append(f"{prefix}.{path}")
            if not state.strict:
                del parent[key]
        client_event.changed = True
    if changed and state.strict:
        raise ClientEventRejected(
            "This agent's configuration is set by the server; the client may not change "
            + ", ".join(changed)
            + ".",
            forbidden_code,
            event_id=client_event.event.get("event_id"),
            param=changed[0],
        )
    client_event.dropped.extend(changed)
    _prune_empty(container, ("audio.input", "audio.output", "audio"))


def _declare_client_functions(
    client_event: ClientEvent, container: dict[str, Any], state: PolicyState
) -> bool:
    """Functions a client declares for itself (OpenAI's usual flow: the client runs them),
    where the agent allows it: sent beside the agent's tools, which stay the agent's (a
    function named like one of them is the agent's). True when ``tools`` was handled."""
    tools = container.get("tools")
    if not (state.client_functions or state.allow_overrides) or not isinstance(tools, list):
        return False
    own = [
        tool
        for tool in tools
        if tool.get("type", "function") == "function"
        and tool.get("name") not in state.agent.tool_names
    ]
    if not own:
        return False  # only the agent's own tools, or none: the table's no-op
    container["tools"] = [*state.agent.tool_definitions, *own]
    client_event.changed = True
    return True


def _locate(container: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, str]:
    *parents, key = path.split(".")
    current: Any = container
    for part in parents:
        current = current.get(part) if isinstance(current, dict) else None
    return (current if isinstance(current, dict) else None), key


def _prune_empty(container: dict[str, Any], paths: tuple[str, ...]) -> None:
    """Remove objects the reconciliation emptied (``audio: {output: {}}``)."""
    for path in paths:
        parent, key = _locate(container, path)
        if parent is not None and parent.get(key) == {}:
            del parent[key]


def _check_session_update(
    client_event: ClientEvent, event_id: str | None, state: PolicyState
) -> None:
    session = client_event.event["session"]
    if "type" not in session:
        # Koe has always taken a session without a type as realtime; the API requires it.
        session["type"] = "realtime"
        client_event.changed = True
    _refuse_hosted_tools(session.get("tools"), "session.tools", event_id)
    _reconcile(client_event, session, SESSION_RULES, "session", state, "session_update_forbidden")


def _check_response_create(
    client_event: ClientEvent, event_id: str | None, state: PolicyState
) -> None:
    response = client_event.event.get("response")
    if response is None:
        return
    _refuse_hosted_tools(response.get("tools"), "response.tools", event_id)
    _reconcile(
        client_event, response, RESPONSE_RULES, "response", state, "response_override_forbidden"
    )
    # A response's own input items pass the same checks as conversation.item.create.
    for index, item in enumerate(response.get("input") or []):
        if item.get("type") != "item_reference":
            _check_item(client_event, item, event_id, state, f"response.input[{index}]")


def _refuse_hosted_tools(tools: Any, param: str, event_id: str | None) -> None:
    for index, tool in enumerate(tools or []):
        if tool.get("type") == "mcp":  # pragma: no mutate (the schema allows function, mcp)
            raise ClientEventRejected(
                "Hosted MCP tools are not available here; declare functions instead.",
                "unsupported_tool",
                event_id=event_id,
                param=f"{param}[{index}].type",
            )


# --- items -----------------------------------------------------------------------------------
def _check_item_create(client_event: ClientEvent, event_id: str | None, state: PolicyState) -> None:
    _check_item(client_event, client_event.event["item"], event_id, state, "item")


def _check_item(
    client_event: ClientEvent,
    item: dict[str, Any],
    event_id: str | None,
    state: PolicyState,
    param: str,
) -> None:
    item_type = item["type"]
    if item_type == "message":
        role = item["role"]
        if role in ("system", "assistant") and not state.allow_overrides:
            what = "instructions" if role == "system" else "what the agent said"
            raise ClientEventRejected(
                f"{role.capitalize()} messages would change {what}; not allowed here.",
                f"{role}_message_forbidden",
                event_id=event_id,
                param=f"{param}.role",
            )
        words = (part.get("text") or part.get("transcript") for part in item["content"])
        text = " ".join(filter(None, words)).strip()
        if text:
            client_event.added.append(AddedText(role, text, str(item.get("id") or "")))
    elif item_type == "function_call_output":
        call_id = item["call_id"]
        if call_id in state.server_call_ids:
            # Clients built for OpenAI answer every function call they see; the platform
            # runs this one, so the answer is dropped quietly, not refused.
            client_event.ignored = True
        elif call_id in state.client_call_ids or state.allow_overrides:
            client_event.function_output = (call_id, item["output"])
        else:
            raise ClientEventRejected(
                f"No function call {call_id!r} is waiting for the client's output.",
                "unknown_call_id",
                event_id=event_id,
                param=f"{param}.call_id",
            )
    else:
        raise ClientEventRejected(
            f"Clients may not create {item_type} items.",
            "invalid_item",
            event_id=event_id,
            param=f"{param}.type",
        )


def _check_response_cancel(
    client_event: ClientEvent, event_id: str | None, state: PolicyState
) -> None:
    if not state.response_active:
        raise ClientEventRejected(
            "Cancellation failed: no active response found.",  # OpenAI's words: clients match them
            "response_cancel_not_active",
            event_id=event_id,
        )


_CHECKS: dict[str, Callable[[ClientEvent, str | None, PolicyState], None]] = {
    events.SESSION_UPDATE: _check_session_update,
    events.ITEM_CREATE: _check_item_create,
    events.RESPONSE_CREATE: _check_response_create,
    events.RESPONSE_CANCEL: _check_response_cancel,
}
