"""The ``llm`` response engine against a fake chat-completions server over real HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncGenerator, Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import openai
import pytest
from openai.types.chat.completion_create_params import CompletionCreateParamsStreaming
from pydantic import TypeAdapter

from agents.realtime.providers.local import llm_engine
from speech.engine import (
    CallFunction,
    EngineError,
    EngineRequest,
    FaqEntry,
    Message,
    Output,
    Say,
    ToolCall,
    ToolResult,
    ToolSpec,
)
from speech.llm import ChatStream, LlmEngine
from tests.fakes.chat_server import FakeChatServer, FakeToolCall, Reply

T = TypeVar("T")

API_KEY = "sk-local-test"

BOOK_TABLE = ToolSpec(
    name="book_table",
    description="Book a table.",
    parameters={
        "type": "object",
        "properties": {"party_size": {"type": "integer"}, "time": {"type": "string"}},
        "required": ["party_size", "time"],
    },
)
QUESTION = EngineRequest(history=[Message("user", "Hi, are you open tonight?")])


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@pytest.fixture
def chat_server() -> Iterator[FakeChatServer]:
    with FakeChatServer(api_key=API_KEY) as server:
        yield server


def engine_for(server: FakeChatServer, **options: Any) -> LlmEngine:
    settings: dict[str, Any] = {
        "base_url": server.url,
        "model": "llama3.2",
        "api_key": API_KEY,
        "timeout_seconds": 5.0,
    }
    return LlmEngine(**{**settings, **options})


async def collect(engine: LlmEngine, request: EngineRequest = QUESTION) -> list[Output]:
    try:
        return [output async for output in engine.respond(request)]
    finally:
        await engine.aclose()


def error_from(engine: LlmEngine, request: EngineRequest = QUESTION) -> str:
    with pytest.raises(EngineError) as raised:
        run(collect(engine, request))
    return str(raised.value)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- speaking ---------------------------------------------------------------------------------


def test_streamed_text_is_spoken_sentence_by_sentence(chat_server: FakeChatServer) -> None:
    chat_server.queue(
        Reply(
            "Hello there! Dr. Smith sees patients at 7.30 on weekdays. A visit costs 3.5 "
            "euros, e.g. with insurance. Anything else?"
        )
    )

    outputs = run(collect(engine_for(chat_server)))

    assert outputs == [
        Say("Hello there!"),
        Say("Dr. Smith sees patients at 7.30 on weekdays."),
        Say("A visit costs 3.5 euros, e.g. with insurance."),
        Say("Anything else?"),
    ]


def test_sentences_are_joined_across_chunk_boundaries(chat_server: FakeChatServer) -> None:
    chat_server.queue(Reply(["Hel", "lo. I", "t costs 3", ".5 eur", "os per ", "hour"]))

    outputs = run(collect(engine_for(chat_server)))

    assert outputs == [Say("Hello."), Say("It costs 3.5 euros per hour")]


def test_markdown_is_not_spoken(chat_server: FakeChatServer) -> None:
    chat_server.queue(
        Reply(
            "## Opening hours\n- **Monday**: 9 to 5.\n- *Tuesday*: closed\n\n"
            "1. Call us first.\nSee [our site](https://example.com) for more."
        )
    )

    outputs = run(collect(engine_for(chat_server)))

    assert outputs == [
        Say("Opening hours"),
        Say("Monday: 9 to 5."),
        Say("Tuesday: closed"),
        Say("1. Call us first."),
        Say("See our site for more."),
    ]


def test_first_sentence_is_spoken_before_the_stream_ends(chat_server: FakeChatServer) -> None:
    # Events: the role, " Sure,", " I", " can", " help.", " Let" (which completes the first
    # sentence); the server holds the rest until released.
    chat_server.queue(Reply("Sure, I can help. Let me see what is free.", hold_after=6))

    async def scenario() -> tuple[Output, int, list[Output]]:
        engine = engine_for(chat_server)
        responses = engine.respond(QUESTION)
        first = await anext(responses)
        streams_done_at_first = chat_server.completed_streams
        chat_server.release()
        rest = [output async for output in responses]
        await engine.aclose()
        return first, streams_done_at_first, rest

    first, streams_done_at_first, rest = run(scenario())

    assert first == Say("Sure, I can help.")
    assert streams_done_at_first == 0
    assert rest == [Say("Let me see what is free.")]
    assert chat_server.wait_for(1, "completed_streams")  # the server counts after its last write


def test_a_slow_steady_stream_does_not_time_out(chat_server: FakeChatServer) -> None:
    # The timeout bounds each wait, not the whole answer: 7 gaps of 0.15 s pass a 0.5 s limit.
    chat_server.queue(Reply("One moment, checking now.", chunk_delay=0.15))

    outputs = run(collect(engine_for(chat_server, timeout_seconds=0.5)))

    assert outputs == [Say("One moment, checking now.")]


def test_crlf_lines_and_keep_alive_comments_are_understood(chat_server: FakeChatServer) -> None:
    chat_server.queue(Reply("Yes. We open at six.", line_ending="\r\n", keep_alive_comments=True))

    outputs = run(collect(engine_for(chat_server)))

    assert outputs == [Say("Yes."), Say("We open at six.")]


# --- calling functions ------------------------------------------------------------------------


def test_tool_call_fragments_become_function_calls_after_the_speech(
    chat_server: FakeChatServer,
) -> None:
    chat_server.queue(
        Reply(
            "Let me book that.",
            tool_calls=[
                FakeToolCall("book_table", {"party_size": 4, "time": "19:30"}, argument_pieces=4),
                FakeToolCall("send_sms", {"to": "+4912345", "text": "See you at 7.30!"}),
            ],
        )
    )

    outputs = run(
        collect(engine_for(chat_server), EngineRequest(QUESTION.history, tools=[BOOK_TABLE]))
    )

    assert outputs == [
        Say("Let me book that."),
        CallFunction("book_table", {"party_size": 4, "time": "19:30"}),
        CallFunction("send_sms", {"to": "+4912345", "text": "See you at 7.30!"}),
    ]


def test_interleaved_fragments_are_joined_by_index(chat_server: FakeChatServer) -> None:
    def fragment(index: int, **function: str) -> str:
        call: dict[str, Any] = {"index": index, "function": function}
        if "name" in function:
            call |= {"id": f"call_{index}", "type": "function"}
        delta = {"tool_calls": [call]}
        return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})

    finish = json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    chat_server.queue(
        Reply(
            raw_events=[
                fragment(0, name="book_table", arguments=""),
                fragment(1, name="hang_up", arguments=""),  # no arguments at all
                fragment(0, arguments='{"party_size": '),
                fragment(0, arguments='2, "time": "20:00"}'),
                finish,
            ]
        )
    )

    outputs = run(collect(engine_for(chat_server)))

    assert outputs == [
        CallFunction("book_table", {"party_size": 2, "time": "20:00"}),
        CallFunction("hang_up", {}),
    ]


@pytest.mark.parametrize("arguments", ['{"party_size": 4', "[4]", "four people"])
def test_invalid_tool_arguments_are_an_error(chat_server: FakeChatServer, arguments: str) -> None:
    chat_server.queue(Reply(tool_calls=[FakeToolCall("book_table", arguments)]))

    message = error_from(engine_for(chat_server))

    assert "invalid tool arguments for book_table" in message


# --- what is sent -----------------------------------------------------------------------------

FULL_REQUEST = EngineRequest(
    history=[
        Message("user", "A table for four at half past seven, please."),
        Message("assistant", "Let me check."),
        ToolCall("call_1", "check_availability", {"time": "19:30"}),
        ToolCall("call_2", "lookup_caller", {}),
        ToolResult("call_1", '{"available": true}'),
        ToolResult("call_2", '{"name": "Ada"}'),
        Message("assistant", "We have a table, Ada."),
        Message("user", "Great, book it."),
    ],
    instructions="You are the booking line of Trattoria Koe.",
    tools=[BOOK_TABLE],
    response_instructions="Confirm the time back to the caller.",
    faq=[FaqEntry("Do you have parking?", "Yes, behind the restaurant.")],
    temperature=0.7,
)


def test_the_request_carries_instructions_history_and_tools(chat_server: FakeChatServer) -> None:
    chat_server.queue(Reply("Booked."))

    run(collect(engine_for(chat_server), FULL_REQUEST))

    [request] = chat_server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    body = request.body
    assert body["model"] == "llama3.2"
    assert body["stream"] is True
    assert body["temperature"] == 0.7
    assert body["tool_choice"] == "auto"
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "book_table",
                "description": "Book a table.",
                "parameters": BOOK_TABLE.parameters,
            },
        }
    ]
    system, *history = body["messages"]
    assert system["role"] == "system"
    for part in (
        "You are the booking line of Trattoria Koe.",
        "Confirm the time back to the caller.",
        "Q: Do you have parking?\nA: Yes, behind the restaurant.",
        "spoken aloud",
        "no markdown",
    ):
        assert part in system["content"]
    assert history == [
        {"role": "user", "content": "A table for four at half past seven, please."},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "check_availability", "arguments": '{"time": "19:30"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "lookup_caller", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"available": true}'},
        {"role": "tool", "tool_call_id": "call_2", "content": '{"name": "Ada"}'},
        {"role": "assistant", "content": "We have a table, Ada."},
        {"role": "user", "content": "Great, book it."},
    ]


def test_a_tool_call_opening_the_turn_gets_its_own_assistant_message(
    chat_server: FakeChatServer,
) -> None:
    chat_server.queue(Reply("Done."))
    request = EngineRequest(
        history=[
            Message("user", "Book it."),
            ToolCall("call_9", "book_table", {"party_size": 2, "time": "20:00"}),
            ToolResult("call_9", "ok"),
        ]
    )

    run(collect(engine_for(chat_server), request))

    assert chat_server.bodies[0]["messages"][1:] == [
        {"role": "user", "content": "Book it."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {
                        "name": "book_table",
                        "arguments": '{"party_size": 2, "time": "20:00"}',
                    },
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": "ok"},
    ]


def _materialized(value: Any) -> Any:
    """Pydantic checks an Iterable field lazily, as it is read: read everything."""
    if isinstance(value, dict):
        return {key: _materialized(item) for key, item in value.items()}
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        return value
    return [_materialized(item) for item in value]


def test_the_request_has_the_official_shape(chat_server: FakeChatServer) -> None:
    chat_server.queue(Reply("Booked."))

    run(collect(engine_for(chat_server), FULL_REQUEST))

    adapter = TypeAdapter(CompletionCreateParamsStreaming)
    # Validating raises when the body is not what the SDK would send.
    request = _materialized(adapter.validate_python(chat_server.bodies[0]))
    assert request["stream"] is True
    assert request["messages"][0]["role"] == "system"
    assert {message["role"] for message in request["messages"]} <= {
        "system", "user", "assistant", "tool"
    }  # fmt: skip


def test_no_tools_and_no_key_send_neither() -> None:
    with FakeChatServer() as server:
        server.queue(Reply("Hi."))

        run(collect(engine_for(server, api_key="")))

        [request] = server.requests
    assert "authorization" not in request.headers
    assert "tools" not in request.body
    assert "tool_choice" not in request.body


# --- failures ---------------------------------------------------------------------------------


def test_a_server_error_status_is_an_engine_error(chat_server: FakeChatServer) -> None:
    chat_server.queue(Reply(status=503, error_message="The model is loading."))

    message = error_from(engine_for(chat_server))

    assert message == "The language model server answered 503: The model is loading."


def test_a_wrong_key_is_an_engine_error(chat_server: FakeChatServer) -> None:
    message = error_from(engine_for(chat_server, api_key="sk-wrong"))

    assert message.startswith("The language model server answered 401: Incorrect API key")


def test_a_wrong_base_url_is_an_engine_error(chat_server: FakeChatServer) -> None:
    base_url = chat_server.url.removesuffix("/v1")

    message = error_from(engine_for(chat_server, base_url=base_url))

    assert "answered 404: Unknown request URL: POST /chat/completions" in message


def test_a_refused_connection_is_an_engine_error() -> None:
    base_url = f"http://127.0.0.1:{free_port()}/v1"

    message = error_from(LlmEngine(base_url=base_url, model="llama3.2"))

    assert message.startswith(f"Cannot connect to the language model server at {base_url}")
    assert "KOE_LOCAL_LLM_BASE_URL" in message


def test_a_silent_server_times_out_and_is_hung_up_on(chat_server: FakeChatServer) -> None:
    chat_server.queue(Reply("Never mind.", hold_after=1))

    message = error_from(engine_for(chat_server, timeout_seconds=0.3))

    assert "did not answer within 0.3 seconds" in message
    assert chat_server.wait_for(1, "disconnects")


def test_a_malformed_chunk_is_an_engine_error(chat_server: FakeChatServer) -> None:
    chat_server.queue(Reply(raw_events=['{"id": "chatcmpl-1", "choices": [']))

    message = error_from(engine_for(chat_server))

    assert message.startswith("The language model server sent a malformed chunk:")


def test_an_error_chunk_is_an_engine_error(chat_server: FakeChatServer) -> None:
    error = {"error": {"message": 'model "llama9" not found', "type": "api_error"}}
    chat_server.queue(Reply(raw_events=[json.dumps(error)]))

    message = error_from(engine_for(chat_server))

    assert message == 'The language model server reported an error: model "llama9" not found'


def test_a_stream_cut_short_is_an_error() -> None:
    stream = ChatStream()
    chunk = {"choices": [{"index": 0, "delta": {"content": "Half a"}, "finish_reason": None}]}
    for line in (f"data: {json.dumps(chunk)}", ""):
        stream.add_line(line)

    with pytest.raises(EngineError, match="ended its answer early"):
        stream.finish()


# --- releasing the stream ---------------------------------------------------------------------


def test_closing_the_response_hangs_up_the_stream(chat_server: FakeChatServer) -> None:
    chat_server.queue(Reply("Sure, I can help. Let me see what is free.", hold_after=6))

    async def scenario() -> tuple[Output, bool]:
        engine = engine_for(chat_server)
        responses = engine.respond(QUESTION)
        assert isinstance(responses, AsyncGenerator)
        first = await anext(responses)
        await responses.aclose()  # the caller barged in
        # Seen before the engine (and its connection pool) is closed.
        is_hung_up = await asyncio.to_thread(chat_server.wait_for, 1, "disconnects", 2.0)
        await engine.aclose()
        return first, is_hung_up

    first, is_hung_up = run(scenario())

    assert first == Say("Sure, I can help.")
    assert is_hung_up
    assert chat_server.completed_streams == 0


def test_a_client_passed_in_stays_open(chat_server: FakeChatServer) -> None:
    chat_server.queue(Reply("Hi."))

    async def scenario() -> bool:
        async with httpx.AsyncClient(timeout=5) as client:
            await collect(engine_for(chat_server, client=client))
            return client.is_closed

    assert run(scenario()) is False


def test_the_provider_needs_a_base_url_for_the_llm_engine(settings: Any) -> None:
    settings.KOE_LOCAL_LLM_BASE_URL = ""

    with pytest.raises(EngineError, match="KOE_LOCAL_LLM_BASE_URL"):
        llm_engine()


def test_the_provider_gives_the_llm_engine_its_server(settings: Any) -> None:
    settings.KOE_LOCAL_LLM_BASE_URL = "http://127.0.0.1:11434/v1"
    settings.KOE_LOCAL_LLM_MODEL = "qwen2.5:3b"
    settings.KOE_LOCAL_LLM_API_KEY = "ollama"
    settings.KOE_LOCAL_LLM_TIMEOUT_SECONDS = 12

    engine = llm_engine()

    assert (engine.url, engine.model, engine.api_key, engine.timeout_seconds) == (
        "http://127.0.0.1:11434/v1/chat/completions",
        "qwen2.5:3b",
        "ollama",
        12,
    )


# --- the fake speaks the protocol (read with the official SDK) --------------------------------


def sdk_client(server: FakeChatServer, api_key: str = API_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=api_key, max_retries=0, timeout=5)


def test_the_fake_stream_reads_as_the_sdk_expects(chat_server: FakeChatServer) -> None:
    chat_server.queue(
        Reply("Booking now.", tool_calls=[FakeToolCall("book_table", {"party_size": 2})])
    )

    chunks = list(
        sdk_client(chat_server).chat.completions.create(
            model="llama3.2",
            messages=[{"role": "user", "content": "Book it"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert chunks[0].choices[0].delta.role == "assistant"
    choices = [chunk.choices[0] for chunk in chunks if chunk.choices]
    text = "".join(choice.delta.content or "" for choice in choices)
    fragments = [call for choice in choices for call in choice.delta.tool_calls or []]
    assert text == "Booking now."
    assert fragments[0].function is not None and fragments[0].function.name == "book_table"
    arguments = "".join(
        fragment.function.arguments or "" for fragment in fragments if fragment.function
    )
    assert json.loads(arguments) == {"party_size": 2}
    assert choices[-1].finish_reason == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_the_fake_answers_without_streaming_and_with_errors(chat_server: FakeChatServer) -> None:
    chat_server.queue(Reply("Hello."))
    client = sdk_client(chat_server)

    completion = client.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "Hi"}]
    )

    assert completion.choices[0].message.content == "Hello."
    assert completion.choices[0].finish_reason == "stop"
    with pytest.raises(openai.AuthenticationError):
        sdk_client(chat_server, api_key="sk-wrong").chat.completions.create(
            model="llama3.2", messages=[{"role": "user", "content": "Hi"}]
        )
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="llama3.2", prompt="Hi")


def test_the_fake_serves_from_the_test_event_loop() -> None:
    async def scenario() -> tuple[list[Output], bool]:
        async with FakeChatServer() as server:
            server.queue(Reply("Hello. How can I help?"), Reply("One. Two.", hold_after=3))
            engine = engine_for(server, api_key="")
            spoken = [output async for output in engine.respond(QUESTION)]
            responses = engine.respond(QUESTION)
            assert isinstance(responses, AsyncGenerator)
            spoken.append(await anext(responses))
            await responses.aclose()
            is_hung_up = await asyncio.to_thread(server.wait_for, 1, "disconnects", 2.0)
            await engine.aclose()
            return spoken, is_hung_up

    spoken, is_hung_up = run(scenario())

    assert spoken == [Say("Hello."), Say("How can I help?"), Say("One.")]
    assert is_hung_up


def test_reasoning_inside_think_tags_is_not_spoken(chat_server: FakeChatServer) -> None:
    # Tags split across chunks, as a streaming server sends them.
    chat_server.queue(
        Reply(["<thi", "nk>The caller wants hours. ", "Say noon.</th", "ink>We open at noon."])
    )

    outputs = run(collect(engine_for(chat_server)))

    assert outputs == [Say("We open at noon.")]


def test_a_lone_angle_bracket_is_still_spoken() -> None:
    from speech.text import ThinkingFilter

    thinking = ThinkingFilter()
    assert thinking.add("Two <") + thinking.add(" three") + thinking.flush() == "Two < three"


def test_a_background_tools_late_result_keeps_the_chat_well_formed() -> None:
    from speech.llm import history_messages

    messages = history_messages(
        [
            Message("user", "How many left?"),
            ToolCall("call_1", "check_stock", {"sku": "A1"}),
            Message("assistant", "One moment, I'm checking."),
            Message("user", "Thanks."),
            ToolResult("call_1", '{"count": 3}'),
        ]
    )

    assert [m["role"] for m in messages] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "user",
    ]
    assert messages[2]["tool_call_id"] == "call_1"
    assert "running" in messages[2]["content"]
    assert messages[-1]["content"] == '(The result of check_stock is in: {"count": 3})'
