"""Platform-run tools are shown to clients as hosted tools (mcp_call) or not at all, never
as functions.

Every event shown must still be a valid GA server event (the SDK's types), so clients
parse them; the model upstream keeps seeing functions."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter

from agents.realtime.presentation import ServerToolPresenter

SERVER_EVENT: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)

CALL = {
    "id": "item_fc",
    "object": "realtime.item",
    "type": "function_call",
    "status": "completed",
    "name": "book_table",
    "call_id": "call_1",
    "arguments": '{"party_size": 2}',
}


def presenter(*, hosted: bool = True) -> ServerToolPresenter:
    return ServerToolPresenter(frozenset({"book_table"}), hosted=hosted)


def shown(presenter_: ServerToolPresenter, event: dict[str, Any]) -> list[dict[str, Any]]:
    result = presenter_.present({"event_id": "event_1", **event})
    for each in result or []:
        SERVER_EVENT.validate_python(each)
    return result if result is not None else [event]


def test_a_platform_tool_call_is_shown_as_a_hosted_mcp_call() -> None:
    tools = presenter()
    added = shown(
        tools,
        {
            "type": "response.output_item.added",
            "response_id": "resp_1",
            "output_index": 0,
            "item": CALL,
        },
    )
    assert [event["item"]["type"] for event in added] == ["mcp_call"]
    assert added[0]["item"]["name"] == "book_table"
    assert added[0]["item"]["server_label"] == "koe"
    arguments = shown(
        tools,
        {
            "type": "response.function_call_arguments.done",
            "response_id": "resp_1",
            "item_id": "item_fc",
            "output_index": 0,
            "call_id": "call_1",
            "name": "book_table",
            "arguments": '{"party_size": 2}',
        },
    )
    assert [event["type"] for event in arguments] == [
        "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress",
    ]
    done = shown(
        tools,
        {
            "type": "response.done",
            "response": {
                "id": "resp_1",
                "object": "realtime.response",
                "status": "completed",
                "output": [CALL],
            },
        },
    )
    assert [item["type"] for item in done[0]["response"]["output"]] == ["mcp_call"]
    # Koe's answer to it is not shown (the client never saw a function call id)...
    echo = {
        "type": "conversation.item.added",
        "previous_item_id": "item_fc",
        "item": {
            "id": "item_out",
            "object": "realtime.item",
            "type": "function_call_output",
            "call_id": "call_1",
            "output": '{"ok": true}',
        },
    }
    assert tools.present(echo) == []
    # ...its completion is, and the call's item with its output.
    completed, item_done = tools.completed("call_1", '{"ok": true}')
    for event in (completed, item_done):
        SERVER_EVENT.validate_python(event)
    assert (completed["type"], completed["item_id"]) == ("response.mcp_call.completed", "item_fc")
    assert item_done["item"]["output"] == '{"ok": true}'
    assert item_done["item"]["arguments"] == '{"party_size": 2}'
    failed, failed_item = tools.completed("call_1", "It timed out.", failed=True)
    assert failed["type"] == "response.mcp_call.failed"
    assert failed_item["item"]["error"] == {
        "type": "tool_execution_error",
        "message": "It timed out.",
    }


def test_a_function_the_client_declared_is_left_a_function() -> None:
    own = {**CALL, "name": "get_weather", "call_id": "call_2", "id": "item_2"}
    event = {"type": "conversation.item.done", "previous_item_id": None, "item": own}
    assert presenter().present(event) is None  # untouched, uncopied
    assert presenter().completed("call_2", "Snow.") == []


def test_other_events_pass_untouched() -> None:
    tools = presenter()
    for event in (
        {"type": "response.output_audio.delta", "delta": "AAAA", "item_id": "i"},
        {"type": "session.updated", "session": {}},
        {"type": "response.done", "response": {"id": "r", "output": []}},
    ):
        assert tools.present(event) is None


def test_a_hidden_platform_tool_call_is_not_shown_at_all() -> None:
    tools = presenter(hosted=False)
    added = {"type": "response.output_item.added", "response_id": "r", "output_index": 0}
    assert tools.present({**added, "item": CALL}) == []
    arguments = {
        "type": "response.function_call_arguments.done",
        "response_id": "r",
        "item_id": "item_fc",
        "output_index": 0,
        "call_id": "call_1",
        "name": "book_table",
        "arguments": "{}",
    }
    assert tools.present(arguments) == []
    assert tools.present({**arguments, "type": "response.function_call_arguments.delta"}) == []
    said = {"id": "item_msg", "type": "message", "role": "assistant", "content": []}
    done = shown(
        tools,
        {
            "type": "response.done",
            "response": {"id": "r", "object": "realtime.response", "output": [CALL, said]},
        },
    )
    assert done[0]["response"]["output"] == [said]  # what the agent said stays
    output = {"id": "o", "type": "function_call_output", "call_id": "call_1", "output": "{}"}
    assert tools.present({"type": "conversation.item.done", "item": output}) == []
    assert tools.completed("call_1", "{}") == []
    # A function the client declared itself is still the client's to see.
    own = {**CALL, "name": "get_weather", "call_id": "call_2", "id": "item_2"}
    assert tools.present({**added, "item": own}) is None


def _added(item: dict[str, Any], previous: str | None) -> dict[str, Any]:
    return {"type": "conversation.item.added", "previous_item_id": previous, "item": item}


@pytest.mark.parametrize("hosted", [False, True])
def test_an_item_after_a_hidden_one_is_placed_after_the_last_item_shown(hosted: bool) -> None:
    """Clients place items by previous_item_id (LiveKit logs 'placed after an unknown item'
    otherwise): the agent's answer after Koe's tool output names what the client saw."""
    tools = presenter(hosted=hosted)
    asked = {"id": "item_user", "type": "message", "role": "user", "content": []}
    assert tools.present(_added(asked, None)) is None
    shown(tools, _added(CALL, "item_user"))
    output = {"id": "item_out", "type": "function_call_output", "call_id": "call_1", "output": "{}"}
    assert tools.present(_added(output, "item_fc")) == []
    answer = {"id": "item_answer", "type": "message", "role": "assistant", "content": []}
    placed = shown(tools, _added(answer, "item_out"))
    assert placed[0]["previous_item_id"] == ("item_fc" if hosted else "item_user")
    committed = {"type": "input_audio_buffer.committed", "item_id": "item_next"}
    assert tools.present({**committed, "previous_item_id": "item_answer"}) is None
    if hosted:  # the call's final state stands where the call stood
        assert tools.completed("call_1", "{}")[1]["previous_item_id"] == "item_user"
