"""The ``llm`` response engine: answers from an OpenAI-compatible chat-completions server.

The operator runs the server (Ollama, llama.cpp's server, vLLM) and points
KOE_LOCAL_LLM_BASE_URL at it. Each response is one streamed ``POST /chat/completions``
with the agent's instructions as the system message, the call so far as the history and
the agent's tools as function tools. Sentences are handed to the voice as soon as they
are complete, so the caller hears the first one while the model is still writing the
rest; function calls are assembled from their fragments and come last.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from speech.engine import (
    CallFunction,
    EngineError,
    EngineRequest,
    FaqEntry,
    Message,
    Output,
    ResponseEngine,
    Say,
    ToolCall,
    ToolResult,
    Turn,
)
from speech.text import SentenceSplitter, ThinkingFilter

SPOKEN_STYLE = (
    "Your reply is spoken aloud to a caller on the phone: keep it brief and plain, in short "
    "sentences, with no markdown, lists, headings or emoji."
)


class LlmEngine(ResponseEngine):
    name = "llm"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "",
        timeout_seconds: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout_seconds = timeout_seconds
        self._client = client
        self._owns_client = client is None

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    async def respond(self, request: EngineRequest) -> AsyncIterator[Output]:
        body = chat_request_body(request, model=self.model)
        headers = {"Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        stream = ChatStream()
        try:
            # Inside the generator, so closing it (the caller barged in) leaves this block
            # and closes the HTTP stream at once instead of letting the model run on.
            async with self._http().stream("POST", self.url, json=body, headers=headers) as reply:
                if not reply.is_success:
                    await reply.aread()
                    raise EngineError(
                        f"The language model server answered {reply.status_code}: "
                        f"{_error_detail(reply.text)}"
                    )
                async for line in reply.aiter_lines():
                    for sentence in stream.add_line(line):
                        yield Say(sentence)
                    if stream.is_done:
                        break
        except httpx.TimeoutException as exc:
            raise EngineError(
                f"The language model server at {self.base_url} did not answer within "
                f"{self.timeout_seconds:g} seconds ({type(exc).__name__})."
            ) from exc
        except httpx.ConnectError as exc:
            raise EngineError(
                f"Cannot connect to the language model server at {self.base_url}: {exc}. "
                "Is it running, and is KOE_LOCAL_LLM_BASE_URL right?"
            ) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise EngineError(
                f"The connection to the language model server at {self.base_url} failed: "
                f"{str(exc).rstrip('.') or type(exc).__name__}."
            ) from exc
        for sentence in stream.finish():
            yield Say(sentence)
        for call in stream.function_calls():
            yield call

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        # Created on first use, inside the event loop that will drive it.
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_seconds))
        return self._client


# --- the request --------------------------------------------------------------------------


def chat_request_body(request: EngineRequest, *, model: str) -> dict[str, Any]:
    """The JSON body of a streamed chat-completions request for one response."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": system_prompt(request)},
            *history_messages(request.history),
        ],
        "stream": True,
        "temperature": request.temperature,
    }
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                },
            }
            for tool in request.tools
        ]
        # OpenAI rejects tool_choice without tools, so it comes only with them.
        body["tool_choice"] = "auto"
    return body


def system_prompt(request: EngineRequest) -> str:
    parts = [request.instructions.strip()] if request.instructions.strip() else []
    if request.response_instructions:
        parts.append(f"For this reply: {request.response_instructions.strip()}")
    if request.faq:
        parts.append(_faq_reference(request.faq))
    parts.append(SPOKEN_STYLE)
    return "\n\n".join(parts)


def _faq_reference(faq: Sequence[FaqEntry]) -> str:
    entries = "\n".join(f"Q: {entry.question}\nA: {entry.answer}" for entry in faq)
    return f"Answers to common questions, to use when they fit:\n{entries}"


RUNNING = json.dumps({"status": "running in the background; the result will follow"})


def history_messages(history: Sequence[Turn]) -> list[dict[str, Any]]:
    """The conversation as chat messages; tool calls in a row share one assistant message.

    Chat servers want each tool call answered by a tool message right after it. A
    background tool answers later, after other turns: its call is answered "running" in
    place, and its result comes as a user message when it arrives.
    """
    messages: list[dict[str, Any]] = []
    open_calls: dict[str, str] = {}  # call id -> name, of the last assistant turn's calls
    late_calls: dict[str, str] = {}

    def close_open_calls() -> None:
        for call_id in open_calls:
            messages.append({"role": "tool", "tool_call_id": call_id, "content": RUNNING})
        late_calls.update(open_calls)
        open_calls.clear()

    for turn in history:
        if isinstance(turn, Message):
            close_open_calls()
            messages.append({"role": turn.role, "content": turn.text})
        elif isinstance(turn, ToolCall):
            previous = messages[-1] if messages else None
            # A call joins the assistant turn before it: its words, or calls made with it.
            joins = (
                previous is not None
                and previous["role"] == "assistant"
                and ("tool_calls" not in previous or bool(open_calls))
            )
            if previous is None or not joins:
                close_open_calls()
                previous = {"role": "assistant", "content": None}
                messages.append(previous)
            # What the agent said just before calling belongs to the same assistant turn,
            # as the model produced it; some chat templates reject two assistant turns in
            # a row.
            previous.setdefault("tool_calls", []).append(
                {
                    "id": turn.call_id,
                    "type": "function",
                    "function": {"name": turn.name, "arguments": json.dumps(turn.arguments)},
                }
            )
            open_calls[turn.call_id] = turn.name
        elif isinstance(turn, ToolResult):
            if turn.call_id in open_calls:
                del open_calls[turn.call_id]
                messages.append(
                    {"role": "tool", "tool_call_id": turn.call_id, "content": turn.output}
                )
            else:
                close_open_calls()
                name = late_calls.pop(turn.call_id, "a tool")
                messages.append(
                    {"role": "user", "content": f"(The result of {name} is in: {turn.output})"}
                )
    close_open_calls()
    return messages


# --- the streamed answer ------------------------------------------------------------------


@dataclass
class _PendingCall:
    name: str = ""
    arguments: str = ""


class ChatStream:
    """Reads a chat-completions event stream line by line: sentences now, calls at the end."""

    def __init__(self) -> None:
        self.is_done = False
        self._data: list[str] = []
        self._sentences = SentenceSplitter()
        self._thinking = ThinkingFilter()
        self._calls: dict[int, _PendingCall] = {}
        self._has_finished = False

    def add_line(self, line: str) -> list[str]:
        """Take one line of the stream; return the sentences it completed."""
        line = line.rstrip("\r")
        if not line:  # a blank line ends an event
            return self._dispatch()
        if line.startswith(":"):  # a comment: keep-alives, "processing" notes
            return []
        field, _, value = line.partition(":")
        if field == "data":
            self._data.append(value.removeprefix(" "))
        return []

    def finish(self) -> list[str]:
        """The stream has ended: return the sentences left over."""
        sentences = self._dispatch()
        if not (self.is_done or self._has_finished):
            raise EngineError("The language model server ended its answer early.")
        return sentences + self._sentences.add(self._thinking.flush()) + self._sentences.flush()

    def function_calls(self) -> Iterator[CallFunction]:
        for index in sorted(self._calls):
            call = self._calls[index]
            if not call.name:
                raise EngineError("The language model called a function without a name.")
            try:
                arguments = json.loads(call.arguments) if call.arguments.strip() else {}
            except json.JSONDecodeError:
                arguments = None
            if not isinstance(arguments, dict):
                raise EngineError(
                    f"The language model produced invalid tool arguments for {call.name}: "
                    f"{_shorten(call.arguments)}"
                )
            yield CallFunction(call.name, arguments)

    def _dispatch(self) -> list[str]:
        if not self._data or self.is_done:
            self._data.clear()
            return []
        data = "\n".join(self._data)
        self._data.clear()
        if data.strip() == "[DONE]":
            self.is_done = True
            return []
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError as exc:
            raise EngineError(
                f"The language model server sent a malformed chunk: {_shorten(data)}"
            ) from exc
        if not isinstance(chunk, dict):
            raise EngineError(f"The language model server sent a malformed chunk: {_shorten(data)}")
        if chunk.get("error"):
            raise EngineError(
                f"The language model server reported an error: {_error_message(chunk['error'])}"
            )
        sentences: list[str] = []
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                sentences += self._sentences.add(self._thinking.add(delta["content"]))
            for fragment in delta.get("tool_calls") or []:
                self._add_call_fragment(fragment)
            if choice.get("finish_reason"):
                self._has_finished = True
        return sentences

    def _add_call_fragment(self, fragment: dict[str, Any]) -> None:
        # The id, type and name come in a call's first fragment, the arguments in pieces;
        # "index" says which call a fragment continues.
        call = self._calls.setdefault(fragment.get("index", len(self._calls)), _PendingCall())
        function = fragment.get("function") or {}
        if function.get("name"):
            call.name += function["name"]
        if function.get("arguments"):
            call.arguments += function["arguments"]


def _error_message(error: object) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def _error_detail(body: str) -> str:
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError:
        return _shorten(body) or "(no body)"
    if isinstance(parsed, dict) and "error" in parsed:
        return _shorten(_error_message(parsed["error"]))
    return _shorten(body)


def _shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
