"""What the built-in provider's response engines see and say.

The local session (``session.py``) turns audio into text and text into audio; an engine
decides what to say in between. It is given the whole conversation so far and answers
with sentences to speak and functions to call, in order. A response that calls a
function ends there: the broker runs the tool, adds its output to the conversation and
asks for the next response, in which the engine sees the ``ToolResult``.

Two engines exist: ``scripted`` (deterministic, driven by the agent's greeting, FAQ and
tool example phrases; needs nothing) and ``llm`` (an OpenAI-compatible chat-completions
server the operator runs). One engine instance serves one call, so it may keep state.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

# --- the conversation, oldest first ---------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """Something the caller said (transcribed) or the agent said (its transcript)."""

    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True)
class ToolCall:
    """A function the agent called."""

    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    """What the broker gave back for a ToolCall: the tool's output, usually JSON text."""

    call_id: str
    output: str


Turn = Message | ToolCall | ToolResult


@dataclass(frozen=True)
class FaqEntry:
    question: str
    answer: str


@dataclass(frozen=True)
class ToolSpec:
    """A function the agent may call, as the session declares it."""

    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema, type "object"
    example_phrases: tuple[str, ...] = ()  # what callers say to ask for it


@dataclass(frozen=True)
class EngineRequest:
    """Everything an engine needs to produce one response."""

    history: Sequence[Turn]
    instructions: str = ""  # the session's (the agent's) instructions
    tools: Sequence[ToolSpec] = ()
    # response.create's own instructions, if any (the broker greets the caller this way)
    response_instructions: str | None = None
    greeting: str = ""
    faq: Sequence[FaqEntry] = ()
    temperature: float = 0.8
    agent_name: str = ""


# --- what an engine produces ------------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    """Text to speak, one or a few sentences; spoken in the order produced."""

    text: str


@dataclass(frozen=True)
class CallFunction:
    """Call one of the request's tools; the response ends after it."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


Output = Say | CallFunction


class EngineError(Exception):
    """The engine could not answer (e.g. its language model server failed)."""


class ResponseEngine(abc.ABC):
    name: str

    @abc.abstractmethod
    def respond(self, request: EngineRequest) -> AsyncIterator[Output]:
        """Yield what to say and call, as soon as each piece is known.

        The session may stop iterating at any time (the caller interrupted): an engine
        holding resources (an HTTP stream) releases them when the iterator is closed.
        """

    async def aclose(self) -> None:  # noqa: B027 (optional hook)
        """Release per-call resources when the call ends."""
