"""A tool's snapshot in an agent version, read as the typed ToolSpec that runs it."""

from __future__ import annotations

import pytest

from tests.conftest import TenantWorld
from tests.factories import ToolFactory
from tools.spec import DEFAULT_TIMEOUT_SECONDS, RemoteTool, ToolSpec


@pytest.mark.django_db
def test_every_field_of_a_snapshot_is_read(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(
        tenant=tenant_a.tenant,
        name="book_table",
        kind="mock",
        execution="background",
        timeout_seconds=25,
        retry_safe=False,
        mock_response="Booked for {people}.",
        example_phrases=["book a table"],
    )
    snapshot = tool.snapshot()
    spec = ToolSpec.from_snapshot(snapshot)

    assert set(snapshot) <= {name for name in ToolSpec.__dataclass_fields__}
    assert (spec.id, spec.name, spec.kind, spec.execution) == (
        tool.public_id,
        "book_table",
        "mock",
        "background",
    )
    assert (spec.timeout_seconds, spec.retry_safe) == (25.0, False)
    assert spec.mock_response == "Booked for {people}."
    assert spec.example_phrases == ("book a table",)
    assert spec.parameters == tool.parameters


def test_a_snapshot_saved_before_a_setting_existed_gets_its_default() -> None:
    spec = ToolSpec.from_snapshot({"name": "lookup_order", "kind": "webhook"})

    assert spec.timeout_seconds == DEFAULT_TIMEOUT_SECONDS
    assert spec.retry_safe is True  # only a tool marked unsafe is never run twice
    assert (spec.execution, spec.http_method) == ("inline", "POST")
    assert spec.parameters is None


def test_odd_values_fall_back_and_remote_tools_are_typed() -> None:
    spec = ToolSpec.from_snapshot(
        {
            "name": "calendar",
            "kind": "mcp",
            "timeout_seconds": 0,
            "parameters": "not a schema",
            "mcp_tools": [
                {"name": "add", "description": "Adds.", "input_schema": {"type": "object"}},
                {"description": "no name"},
                "junk",
            ],
        }
    )

    assert spec.timeout_seconds == DEFAULT_TIMEOUT_SECONDS
    assert spec.parameters is None
    assert spec.mcp_tools == (RemoteTool("add", "Adds.", {"type": "object"}),)
