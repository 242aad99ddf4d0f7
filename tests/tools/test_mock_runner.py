"""Mock tools answer from their template, filled safely with the call's arguments."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tools.execution import ToolSecrets, execute, parse_arguments
from tools.outcomes import ToolOutcome, ToolRequest
from tools.spec import ToolSpec

BOOK_TABLE = {
    "name": "book_table",
    "kind": "mock",
    "mock_response": "Your table for {party_size} at {time} is booked. See you then!",
}


def run(arguments: str, tool: dict[str, Any] | None = None) -> dict[str, Any]:
    tool = tool or BOOK_TABLE
    parsed = parse_arguments(arguments, tool["name"], None)
    if isinstance(parsed, ToolOutcome):
        outcome = parsed
    else:
        request = ToolRequest(
            tool=ToolSpec.from_snapshot(tool),
            arguments=parsed,
            tenant_id="ten_1",
            agent_id="agt_1",
            call_id="call_1",
            function_call_id="fc_1",
        )
        outcome = asyncio.run(execute(request, ToolSecrets()))
    result: dict[str, Any] = json.loads(outcome.output)
    return result


def test_a_mock_tool_fills_its_reply_from_the_arguments() -> None:
    result = run('{"party_size": 2, "time": "19:00"}')

    assert result == {"ok": True, "message": "Your table for 2 at 19:00 is booked. See you then!"}


def test_missing_arguments_render_empty_and_extra_ones_are_ignored() -> None:
    result = run('{"time": "19:00", "name": "Ada"}')

    assert result["message"] == "Your table for  at 19:00 is booked. See you then!"


@pytest.mark.parametrize(
    ("value", "spoken"),
    [
        (None, ""),
        (True, "yes"),
        (False, "no"),
        (4.0, "4"),
        (4.5, "4.5"),
        (["19:00", "20:00"], "19:00, 20:00"),
        ({"hour": 19}, '{"hour": 19}'),
        ([{"hour": 19}], '[{"hour": 19}]'),
    ],
)
def test_every_argument_value_renders_as_text(value: Any, spoken: str) -> None:
    tool = {"name": "echo", "kind": "mock", "mock_response": "<{value}>"}

    assert run(json.dumps({"value": value}), tool)["message"] == f"<{spoken}>"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        # A name no argument has: empty, never the attribute of some object.
        ("{__class__}", ""),
        ("{__init__}", ""),
        # Not a plain name: left as written (str.format would follow each of these).
        ("{party_size.__class__}", "{party_size.__class__}"),
        ("{party_size.__class__.__mro__}", "{party_size.__class__.__mro__}"),
        ("{party_size[0]}", "{party_size[0]}"),
        ("{0}", "{0}"),
        ("{}", "{}"),
        ("{party_size!r}", "{party_size!r}"),
        ("{party_size:>10}", "{party_size:>10}"),
    ],
)
def test_templates_cannot_reach_into_python_objects(template: str, message: str) -> None:
    tool = {"name": "probe", "kind": "mock", "mock_response": template}

    assert run('{"party_size": "2"}', tool)["message"] == message


def test_an_argument_named_like_a_dunder_is_only_a_value() -> None:
    tool = {"name": "probe", "kind": "mock", "mock_response": "[{__class__}]"}

    assert run('{"__class__": "x"}', tool)["message"] == "[x]"
    assert run("{}", tool)["message"] == "[]"


def test_arguments_with_braces_are_not_rendered_again() -> None:
    result = run('{"party_size": "{time}", "time": "19:00"}')

    assert result["message"] == "Your table for {time} at 19:00 is booked. See you then!"


@pytest.mark.parametrize("arguments", ["{", "not json", "[1, 2]", '"two"', "null", "3"])
def test_arguments_that_are_not_a_json_object_are_an_error(arguments: str) -> None:
    result = run(arguments)

    assert result["error"]["code"] == "invalid_arguments"
    assert "book_table" in result["error"]["message"]


def test_empty_arguments_are_no_arguments() -> None:
    assert run("")["message"] == "Your table for  at  is booked. See you then!"


def test_a_mock_tool_without_a_reply_answers_empty() -> None:
    assert run("{}", {"name": "blank", "kind": "mock"}) == {"ok": True, "message": ""}


def test_an_unknown_kind_is_unavailable_with_a_structured_error() -> None:
    result = run('{"party_size": 2}', {"name": "book_table", "kind": "carrier_pigeon"})

    assert result["error"]["code"] == "tool_unavailable"
    assert "book_table" in result["error"]["message"]
