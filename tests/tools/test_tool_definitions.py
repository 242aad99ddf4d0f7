"""Tool definitions: example phrases, the mock kind and its reply, and what versions record."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from agents.versions import reversion_agents_using
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, ToolFactory
from tools.mock import placeholder_names, render_template
from tools.models import ToolDefinition

BOOKING_PARAMETERS = {
    "type": "object",
    "properties": {"party_size": {"type": "integer"}, "time": {"type": "string"}},
    "required": ["party_size", "time"],
}


def mock_tool(tenant_a: TenantWorld, **overrides: Any) -> ToolDefinition:
    fields: dict[str, Any] = {
        "tenant": tenant_a.tenant,
        "name": "book_table",
        "description": "Books a table.",
        "parameters": BOOKING_PARAMETERS,
        "kind": "mock",
        "mock_response": "Your table for {party_size} at {time} is booked.",
        "example_phrases": ["book a table"],
    }
    fields.update(overrides)
    return ToolDefinition(**fields)


def errors_of(tool: ToolDefinition) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        tool.full_clean()
    return caught.value.message_dict


def test_a_mock_tool_with_phrases_is_valid_and_its_phrases_are_tidied(
    tenant_a: TenantWorld,
) -> None:
    tool = mock_tool(tenant_a, example_phrases=["  a table\nfor two ", "book a table"])

    tool.full_clean()

    assert tool.example_phrases == ["a table for two", "book a table"]


@pytest.mark.parametrize(
    ("phrases", "message"),
    [
        ("book a table", "A list of phrases"),
        (["book a table", 7], "A list of phrases"),
        (["book a table", "   "], "Phrase 2 is empty."),
        (["x" * 201], "Phrase 1 is longer than 200 characters (it has 201)."),
        (["book a table"] * 21, "At most 20 example phrases (there are 21)."),
    ],
)
def test_invalid_example_phrases_are_a_field_error(
    tenant_a: TenantWorld, phrases: Any, message: str
) -> None:
    errors = errors_of(mock_tool(tenant_a, example_phrases=phrases))

    assert any(message in error for error in errors["example_phrases"]), errors


def test_a_mock_tool_needs_a_reply(tenant_a: TenantWorld) -> None:
    errors = errors_of(mock_tool(tenant_a, mock_response="  "))

    assert errors["mock_response"] == ["A mock tool needs the reply to give."]


def test_unknown_placeholders_are_named(tenant_a: TenantWorld) -> None:
    errors = errors_of(
        mock_tool(tenant_a, mock_response="{__class__} {party_size} {partysize} {__class__}")
    )

    assert errors["mock_response"] == [
        "Unknown placeholders: {__class__}, {partysize}. "
        "Use the parameters' names: party_size, time."
    ]


def test_placeholders_need_parameters_that_declare_them(tenant_a: TenantWorld) -> None:
    tool = mock_tool(
        tenant_a,
        parameters={"type": "object", "properties": {}, "required": []},
        mock_response="Booked for {name}.",
    )

    assert errors_of(tool)["mock_response"] == [
        "Unknown placeholders: {name}. The parameters declare no properties."
    ]


def test_braces_that_are_not_placeholders_are_plain_text(tenant_a: TenantWorld) -> None:
    template = "Booked {party_size} {0} { time } {a.b} {}"
    tool = mock_tool(tenant_a, mock_response=template)
    tool.full_clean()  # only {party_size} is a placeholder, and it is declared
    assert placeholder_names(template) == ["party_size"]
    assert render_template(template, {"party_size": 2}) == "Booked 2 {0} { time } {a.b} {}"


def test_other_kinds_ignore_a_stale_mock_reply(tenant_a: TenantWorld) -> None:
    tool = mock_tool(
        tenant_a, kind="webhook", webhook_url="https://hooks.example.com", mock_response="{nope}"
    )

    tool.full_clean()

    assert "mock_response" not in tool.snapshot()


def test_the_snapshot_has_phrases_and_for_mock_tools_the_reply(tenant_a: TenantWorld) -> None:
    tool = mock_tool(tenant_a)
    tool.full_clean()
    tool.save()
    webhook = ToolFactory(tenant=tenant_a.tenant)

    snapshot = tool.snapshot()

    assert snapshot["kind"] == "mock"
    assert snapshot["example_phrases"] == ["book a table"]
    assert snapshot["mock_response"] == "Your table for {party_size} at {time} is booked."
    assert webhook.snapshot()["example_phrases"] == []
    assert "mock_response" not in webhook.snapshot()


def test_changing_phrases_or_the_reply_re_versions_the_agents(tenant_a: TenantWorld) -> None:
    tool = mock_tool(tenant_a)
    tool.save()
    agent = AgentFactory(tenant=tenant_a.tenant, tools=[tool])

    tool.example_phrases = ["book a table", "a table for four tonight"]
    tool.save()
    reversion_agents_using(tool)
    tool.mock_response = "Booked: {party_size} at {time}."
    tool.save()
    reversion_agents_using(tool)

    configs = [version.config["tools"][0] for version in agent.versions.order_by("number")]
    assert [config["example_phrases"] for config in configs] == [
        ["book a table"],
        ["book a table", "a table for four tonight"],
        ["book a table", "a table for four tonight"],
    ]
    assert configs[2]["mock_response"] == "Booked: {party_size} at {time}."
