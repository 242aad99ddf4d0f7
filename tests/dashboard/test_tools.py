"""The tools pages: list, create/edit with validation, secrets shown once, duplicate, delete."""

from __future__ import annotations

import contextlib
import html
import json
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import NoReverseMatch, reverse

from agents.models import Agent, AgentVersion
from tenancy.roles import Role
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, ToolFactory
from tools.models import ToolDefinition

EDITING_ROLES = [Role.OWNER, Role.ADMIN, Role.EDITOR]
PARAMETERS = {
    "type": "object",
    "properties": {"party_size": {"type": "integer"}},
    "required": ["party_size"],
}


def tool_data(**overrides: Any) -> dict[str, Any]:
    """A valid webhook tool submission."""
    data: dict[str, Any] = {
        "name": "book_table",
        "description": "Books a table for the caller.",
        "parameters": json.dumps(PARAMETERS),
        "kind": "webhook",
        "execution": "inline",
        "timeout_seconds": "10",
        "webhook_url": "https://hooks.example.com/book",
        "http_method": "POST",
        "webhook_headers": "",
        "builtin_name": "",
        "mcp_server_url": "",
        "mcp_auth_header": "",
        "mcp_tool_names": "",
        "example_phrases": "",
        "mock_response": "",
    }
    data.update(overrides)
    return data


def database_state() -> dict[str, list[tuple[Any, ...]]]:
    return {
        "tools": sorted(ToolDefinition.objects.values_list(), key=repr),
        "agents": sorted(Agent.objects.values_list(), key=repr),
        "versions": sorted(AgentVersion.objects.values_list(), key=repr),
        "agent_tools": sorted(Agent.tools.through.objects.values_list(), key=repr),
    }


def text_of(response: Any) -> str:
    return html.unescape(response.content.decode())


def edit_url(tool: ToolDefinition) -> str:
    return reverse("dashboard:tool_edit", args=[tool.public_id])


def rotate_url(tool: ToolDefinition) -> str:
    return reverse("dashboard:tool_rotate_secret", args=[tool.public_id])


# --- list ---------------------------------------------------------------------------------


def test_empty_list_invites_an_editor_to_create_a_tool(tenant_a: TenantWorld) -> None:
    response = tenant_a.client_for(Role.EDITOR).get(reverse("dashboard:tool_list"))

    page = text_of(response)
    assert response.status_code == 200
    assert "No tools yet — create your first tool" in page
    assert reverse("dashboard:tool_create") in page


def test_list_shows_kind_execution_and_how_many_agents_use_each(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    shared = ToolFactory(tenant=tenant_a.tenant, name="check_order")
    ToolFactory(tenant=tenant_a.tenant, name="unused_tool", execution="background")
    AgentFactory(tenant=tenant_a.tenant, tools=[shared])
    AgentFactory(tenant=tenant_a.tenant, tools=[shared])
    ToolFactory(tenant=tenant_b.tenant, name="their_tool")

    page = text_of(tenant_a.client_for(Role.AUDITOR).get(reverse("dashboard:tool_list")))

    rows = {row.split("</td>")[0]: row for row in page.split("<tr>")[2:]}
    check_order = next(row for key, row in rows.items() if "check_order" in key)
    unused = next(row for key, row in rows.items() if "unused_tool" in key)
    assert "Webhook" in check_order
    assert "2 agents" in check_order
    assert "0 agents" in unused
    assert "Background" in unused
    assert "their_tool" not in page


# --- create -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", EDITING_ROLES)
def test_creating_a_webhook_tool_shows_its_signing_secret_once(
    role: str, tenant_a: TenantWorld
) -> None:
    client = tenant_a.client_for(role)

    response = client.post(reverse("dashboard:tool_create"), tool_data())

    tool = ToolDefinition.objects.get(tenant=tenant_a.tenant, name="book_table")
    assert response.status_code == 200
    assert tool.signing_secret.startswith("whsec_")
    assert tool.signing_secret in text_of(response)
    assert "will not be shown again" in text_of(response)
    assert response["Cache-Control"] == "no-store"
    assert tool.parameters == PARAMETERS
    assert tool.webhook_url == "https://hooks.example.com/book"
    assert tool.signing_secret not in text_of(client.get(edit_url(tool)))
    assert tool.signing_secret not in text_of(client.get(reverse("dashboard:tool_list")))


def test_the_signing_secret_is_encrypted_at_rest(tenant_a: TenantWorld) -> None:
    tenant_a.client_for(Role.EDITOR).post(reverse("dashboard:tool_create"), tool_data())
    tool = ToolDefinition.objects.get(name="book_table")

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT signing_secret FROM {ToolDefinition._meta.db_table} WHERE id = %s", [tool.pk]
        )
        stored = cursor.fetchone()[0]

    assert tool.signing_secret not in stored


def test_creating_a_builtin_tool_goes_to_its_page(tenant_a: TenantWorld) -> None:
    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:tool_create"),
        tool_data(name="hang_up", kind="builtin", builtin_name="end_call", webhook_url=""),
    )

    tool = ToolDefinition.objects.get(name="hang_up")
    assert response.status_code == 302
    assert response["Location"] == edit_url(tool)
    assert tool.builtin_name == "end_call"


def test_creating_an_mcp_tool_parses_tool_names(tenant_a: TenantWorld) -> None:
    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:tool_create"),
        tool_data(
            name="calendar",
            kind="mcp",
            webhook_url="",
            mcp_server_url="https://mcp.example.com/sse",
            mcp_auth_header="Bearer mcp-secret-99",
            mcp_tool_names="list_slots, book_slot\ncancel_slot\n\nbook_slot",
        ),
    )

    tool = ToolDefinition.objects.get(name="calendar")
    assert response.status_code == 302
    assert tool.mcp_tool_names == ["list_slots", "book_slot", "cancel_slot"]
    assert tool.mcp_auth_header == "Bearer mcp-secret-99"


def test_creating_a_mock_tool_with_example_phrases(tenant_a: TenantWorld) -> None:
    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:tool_create"),
        tool_data(
            kind="mock",
            webhook_url="",
            mock_response="Your table for {party_size} is booked.",
            example_phrases="book a table\n\n  a table   for two \nbook a table\n",
        ),
    )

    tool = ToolDefinition.objects.get(name="book_table")
    assert response.status_code == 302
    assert response["Location"] == edit_url(tool)
    assert tool.kind == "mock"
    assert tool.mock_response == "Your table for {party_size} is booked."
    assert tool.example_phrases == ["book a table", "a table for two"]
    assert tool.snapshot()["mock_response"] == "Your table for {party_size} is booked."


def test_the_edit_page_shows_phrases_one_per_line_and_the_mock_reply(
    tenant_a: TenantWorld,
) -> None:
    tool = ToolFactory(
        tenant=tenant_a.tenant,
        kind="mock",
        parameters=PARAMETERS,
        mock_response="Booked for {party_size}.",
        example_phrases=["book a table", "a table for two"],
    )

    response = tenant_a.client_for(Role.AUDITOR).get(edit_url(tool))

    page = text_of(response)
    assert response.status_code == 200
    assert "book a table\na table for two</textarea>" in page
    assert "Booked for {party_size}.</textarea>" in page
    assert '<label for="id_example_phrases">Example phrases:</label>' in page
    assert '<label for="id_mock_response">Mock reply:</label>' in page
    assert "Mock reply (a fixed response, for demos and testing)" in page


def test_the_create_form_has_a_fieldset_per_kind(tenant_a: TenantWorld) -> None:
    page = text_of(tenant_a.client_for(Role.EDITOR).get(reverse("dashboard:tool_create")))

    for kind in ["webhook", "builtin", "mcp", "mock"]:
        assert f'<fieldset data-kind="{kind}">' in page
    assert '"type": "object"' in page


INVALID_SUBMISSIONS = [
    pytest.param({"name": "book table"}, "name", "no spaces or dots", id="name-with-space"),
    pytest.param({"name": "book.table"}, "name", "no spaces or dots", id="name-with-dot"),
    pytest.param({"name": "x" * 65}, "name", "64", id="name-too-long"),
    pytest.param(
        {"parameters": '{\n  "type": "object",\n  "properties": {}\n  "required": []\n}'},
        "parameters",
        "Line 4: Expecting ',' delimiter",
        id="broken-json",
    ),
    pytest.param(
        {"parameters": json.dumps({"type": "object", "properties": {"x": {"type": "nope"}}})},
        "parameters",
        "Not a valid JSON Schema at properties/x/type",
        id="bad-schema",
    ),
    pytest.param(
        {"parameters": json.dumps({"type": "array", "items": {"type": "string"}})},
        "parameters",
        '"type": "object" at its root',
        id="root-not-object",
    ),
    pytest.param(
        {"parameters": "[1, 2]"}, "parameters", "must be a JSON object", id="parameters-a-list"
    ),
    pytest.param(
        {"parameters": json.dumps({"type": "object", "properties": {}, "required": ["date"]})},
        "parameters",
        "Required parameter date is not listed in properties",
        id="required-not-in-properties",
    ),
    pytest.param({"parameters": '{"type": "object", "x": NaN}'}, "parameters", "NaN", id="nan"),
    pytest.param({"parameters": ""}, "parameters", "required", id="parameters-empty"),
    pytest.param(
        {"parameters": "[" * 5000 + "]" * 5000}, "parameters", "nested", id="very-deep-json"
    ),
    pytest.param(
        {"parameters": '{"type": "object", "properties": {"a": ' + "[" * 33 + "]" * 33 + "}}"},
        "parameters",
        "nested more than 32 levels",
        id="deep-json",
    ),
    pytest.param(
        {"webhook_url": "ftp://files.example.com/hook"},
        "webhook_url",
        "Only http:// and https://",
        id="ftp-url",
    ),
    pytest.param({"webhook_url": ""}, "webhook_url", "needs the URL", id="webhook-without-url"),
    pytest.param(
        {"webhook_headers": '{"X-Key": 1}'},
        "webhook_headers",
        "string names to string values",
        id="header-not-string",
    ),
    pytest.param(
        {"webhook_headers": "{'X-Key': 'a'}"},
        "webhook_headers",
        "Line 1: Expecting property name",
        id="headers-not-json",
    ),
    pytest.param(
        {"kind": "builtin", "builtin_name": ""}, "builtin_name", "Choose which", id="builtin-none"
    ),
    pytest.param(
        {"kind": "mcp", "mcp_server_url": "ftp://mcp.example.com"},
        "mcp_server_url",
        "Only http:// and https://",
        id="mcp-ftp-url",
    ),
    pytest.param(
        {"kind": "mcp", "mcp_server_url": "https://mcp.example.com", "mcp_tool_names": "a b, ok"},
        "mcp_tool_names",
        "Not valid tool names: a b",
        id="mcp-bad-name",
    ),
    pytest.param(
        {"kind": "mock", "mock_response": "  "},
        "mock_response",
        "A mock tool needs the reply to give.",
        id="mock-without-reply",
    ),
    pytest.param(
        {"kind": "mock", "mock_response": "Booked for {party_size} at {time}, {__class__}."},
        "mock_response",
        "Unknown placeholders: {time}, {__class__}. Use the parameters' names: party_size.",
        id="mock-unknown-placeholders",
    ),
    pytest.param(
        {"kind": "mock", "mock_response": "x" * 2001},
        "mock_response",
        "at most 2000 characters",
        id="mock-reply-too-long",
    ),
    pytest.param(
        {"example_phrases": "book a table\n\n" + "x" * 201},
        "example_phrases",
        "Line 3 is longer than 200 characters (it has 201).",
        id="phrase-too-long",
    ),
    pytest.param(
        {"example_phrases": "\n".join(f"phrase {n}" for n in range(21))},
        "example_phrases",
        "At most 20 example phrases (there are 21).",
        id="too-many-phrases",
    ),
    pytest.param({"timeout_seconds": "0"}, "timeout_seconds", "greater than", id="timeout-0"),
    pytest.param({"kind": "email"}, "kind", "Select a valid choice", id="unknown-kind"),
]


@pytest.mark.parametrize(("overrides", "field", "message"), INVALID_SUBMISSIONS)
def test_invalid_tools_are_reported_at_the_field(
    overrides: dict[str, str], field: str, message: str, tenant_a: TenantWorld
) -> None:
    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:tool_create"), tool_data(**overrides)
    )

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, errors
    assert message in " ".join(errors[field])
    assert html.escape(message) in response.content.decode() or message in text_of(response)
    assert not ToolDefinition.objects.exists()


def test_broken_json_is_shown_back_as_typed(tenant_a: TenantWorld) -> None:
    broken = '{"type": "object",, }'

    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:tool_create"), tool_data(parameters=broken)
    )

    assert broken in text_of(response)


def test_a_duplicate_tool_name_is_a_field_error(tenant_a: TenantWorld) -> None:
    ToolFactory(tenant=tenant_a.tenant, name="book_table")

    response = tenant_a.client_for(Role.EDITOR).post(reverse("dashboard:tool_create"), tool_data())

    assert response.status_code == 200
    assert response.context["form"].errors["name"] == ["A tool named “book_table” already exists."]
    assert ToolDefinition.objects.count() == 1


# --- edit ---------------------------------------------------------------------------------


def test_webhook_headers_are_never_rendered_back(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant, webhook_headers='{"X-Api-Key": "hdr-secret-77"}')

    response = tenant_a.client_for(Role.EDITOR).get(edit_url(tool))

    page = text_of(response)
    assert response.status_code == 200
    assert "hdr-secret-77" not in page
    assert "Headers are set (hidden); enter new JSON to replace them" in page


def test_an_empty_headers_box_keeps_them_and_new_json_replaces_them(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(
        tenant=tenant_a.tenant, name="book_table", webhook_headers='{"X-Api-Key": "old"}'
    )
    client = tenant_a.client_for(Role.EDITOR)

    kept = client.post(edit_url(tool), tool_data(description="Changed.", webhook_headers=""))
    tool.refresh_from_db()
    assert kept.status_code == 302
    assert tool.description == "Changed."
    assert tool.headers == {"X-Api-Key": "old"}

    client.post(edit_url(tool), tool_data(webhook_headers='{"X-Api-Key": "new"}'))
    tool.refresh_from_db()
    assert tool.headers == {"X-Api-Key": "new"}

    client.post(edit_url(tool), tool_data(webhook_headers="{}"))
    tool.refresh_from_db()
    assert tool.headers == {}


def test_the_mcp_auth_header_is_never_rendered_back_and_empty_keeps_it(
    tenant_a: TenantWorld,
) -> None:
    tool = ToolFactory(
        tenant=tenant_a.tenant,
        name="calendar",
        kind="mcp",
        webhook_url="",
        mcp_server_url="https://mcp.example.com",
        mcp_auth_header="Bearer mcp-secret-99",
    )
    client = tenant_a.client_for(Role.EDITOR)

    page = text_of(client.get(edit_url(tool)))
    response = client.post(
        edit_url(tool),
        tool_data(
            name="calendar", kind="mcp", webhook_url="", mcp_server_url="https://mcp.example.com"
        ),
    )

    tool.refresh_from_db()
    assert "mcp-secret-99" not in page
    assert "A header is set (hidden)" in page
    assert response.status_code == 302
    assert tool.mcp_auth_header == "Bearer mcp-secret-99"


def test_editing_a_tool_re_versions_the_agents_using_it(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant, name="book_table")
    user_of_tool = AgentFactory(tenant=tenant_a.tenant, tools=[tool])
    bystander = AgentFactory(tenant=tenant_a.tenant)

    response = tenant_a.client_for(Role.EDITOR).post(
        edit_url(tool), tool_data(description="Books a table, up to 12 people.")
    )

    assert response.status_code == 302
    latest = user_of_tool.versions.order_by("-number").first()
    assert latest is not None
    assert latest.number == 2
    assert latest.config["tools"][0]["description"] == "Books a table, up to 12 people."
    assert latest.created_by == tenant_a.members[Role.EDITOR].user
    assert user_of_tool.versions.get(number=1).config["tools"][0]["description"] == (
        "Look up an order by its number."
    )
    assert bystander.versions.count() == 1


def test_an_invalid_edit_changes_nothing(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant, name="book_table")
    AgentFactory(tenant=tenant_a.tenant, tools=[tool])
    before = database_state()

    response = tenant_a.client_for(Role.EDITOR).post(
        edit_url(tool), tool_data(parameters='{"type": "string"}')
    )

    assert response.status_code == 200
    assert "parameters" in response.context["form"].errors
    assert database_state() == before


# --- duplicate, delete, rotate ------------------------------------------------------------


def test_duplicating_a_tool_makes_a_copy_with_a_fresh_secret(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(
        tenant=tenant_a.tenant, name="book_table", webhook_headers='{"X-Api-Key": "k"}'
    )
    AgentFactory(tenant=tenant_a.tenant, tools=[tool])
    client = tenant_a.client_for(Role.EDITOR)
    url = reverse("dashboard:tool_duplicate", args=[tool.public_id])

    first = client.post(url)
    second = client.post(url)

    copy = ToolDefinition.objects.get(name="book_table_copy")
    copy_2 = ToolDefinition.objects.get(name="book_table_copy2")
    assert first.status_code == 200
    assert copy.signing_secret in text_of(first)
    assert copy_2.signing_secret in text_of(second)
    assert len({tool.signing_secret, copy.signing_secret, copy_2.signing_secret}) == 3
    assert copy.public_id != tool.public_id
    assert copy.parameters == tool.parameters
    assert copy.headers == {"X-Api-Key": "k"}
    assert not copy.agents.exists()


def test_duplicating_a_long_name_keeps_a_valid_function_name(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(
        tenant=tenant_a.tenant,
        name="n" * 64,
        kind="builtin",
        webhook_url="",
        builtin_name="end_call",
    )

    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:tool_duplicate", args=[tool.public_id])
    )

    copy = ToolDefinition.objects.exclude(pk=tool.pk).get()
    assert response.status_code == 302
    assert response["Location"] == edit_url(copy)
    assert copy.name == "n" * 59 + "_copy"
    copy.full_clean()


def test_delete_confirmation_names_the_agents_using_the_tool(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant, name="book_table")
    agent = AgentFactory(tenant=tenant_a.tenant, name="Front desk", tools=[tool])
    client = tenant_a.client_for(Role.EDITOR)
    url = reverse("dashboard:tool_delete", args=[tool.public_id])

    confirm = client.get(url)
    assert confirm.status_code == 200
    assert "Front desk" in text_of(confirm)
    assert ToolDefinition.objects.filter(pk=tool.pk).exists()

    response = client.post(url)
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:tool_list")
    assert not ToolDefinition.objects.filter(pk=tool.pk).exists()
    latest = agent.versions.order_by("-number").first()
    assert latest is not None
    assert latest.number == 2
    assert latest.config["tools"] == []


def test_rotating_the_signing_secret_shows_the_new_one_once(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant)
    old_secret = tool.signing_secret
    client = tenant_a.client_for(Role.EDITOR)

    response = client.post(rotate_url(tool))

    tool.refresh_from_db()
    assert response.status_code == 200
    assert tool.signing_secret != old_secret
    assert tool.signing_secret in text_of(response)
    assert old_secret not in text_of(response)
    assert tool.signing_secret not in text_of(client.get(edit_url(tool)))


def test_the_edit_page_offers_to_rotate_the_secret(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant)

    page = text_of(tenant_a.client_for(Role.EDITOR).get(edit_url(tool)))

    assert f'formaction="{rotate_url(tool)}"' in page
    assert tool.signing_secret not in page


def test_rotating_answers_only_post(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant)
    old_secret = tool.signing_secret

    response = tenant_a.client_for(Role.EDITOR).get(rotate_url(tool))

    tool.refresh_from_db()
    assert response.status_code == 405
    assert tool.signing_secret == old_secret


# --- auditors -----------------------------------------------------------------------------


def test_auditors_see_tools_read_only(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant, webhook_headers='{"X-Api-Key": "hdr-secret-77"}')
    client = tenant_a.client_for(Role.AUDITOR)

    listing = client.get(reverse("dashboard:tool_list"))
    page_response = client.get(edit_url(tool))

    page = text_of(page_response)
    assert listing.status_code == 200
    assert reverse("dashboard:tool_create") not in text_of(listing)
    assert page_response.status_code == 200
    assert "Read-only" in page
    assert f'name="name" value="{tool.name}"' in page
    assert "disabled" in page.split('name="name"')[1].split(">")[0]
    assert "Save tool" not in page
    assert "hdr-secret-77" not in page
    assert tool.signing_secret not in page
    for name in ["tool_duplicate", "tool_delete"]:
        assert reverse(f"dashboard:{name}", args=[tool.public_id]) not in page
    assert "Rotate" not in page


def _tool_requests(tool: ToolDefinition) -> list[tuple[str, str]]:
    requests = [
        ("GET", reverse("dashboard:tool_create")),
        ("POST", reverse("dashboard:tool_create")),
        ("POST", edit_url(tool)),
        ("POST", reverse("dashboard:tool_duplicate", args=[tool.public_id])),
        ("GET", reverse("dashboard:tool_delete", args=[tool.public_id])),
        ("POST", reverse("dashboard:tool_delete", args=[tool.public_id])),
    ]
    with contextlib.suppress(NoReverseMatch):  # until urls.py routes it
        requests.append(("POST", reverse("dashboard:tool_rotate_secret", args=[tool.public_id])))
    return requests


def test_auditors_cannot_change_tools(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant, name="book_table")
    AgentFactory(tenant=tenant_a.tenant, tools=[tool])
    before = database_state()
    client = tenant_a.client_for(Role.AUDITOR)

    for method, url in _tool_requests(tool):
        data = tool_data(name="changed", description="Changed.")
        response = client.get(url) if method == "GET" else client.post(url, data)
        assert response.status_code == 403, (method, url)
    assert database_state() == before


# --- other tenants ------------------------------------------------------------------------


@pytest.mark.parametrize("role", Role.values)
def test_another_tenants_tool_urls_are_not_found(
    role: str, tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant, name="book_table")
    AgentFactory(tenant=tenant_a.tenant, tools=[tool])
    before = database_state()
    client: Client = tenant_b.client_for(role)
    requests = [("GET", edit_url(tool))] + [
        (method, url) for method, url in _tool_requests(tool) if tool.public_id in url
    ]

    for method, url in requests:
        data = tool_data(name="hijacked")
        response = client.get(url) if method == "GET" else client.post(url, data)
        assert response.status_code == 404, (method, url)
    assert database_state() == before


def test_a_deeply_nested_schema_is_a_validation_error_not_a_crash() -> None:
    from django.core.exceptions import ValidationError

    from tools.schema import validate_parameters_schema

    schema: dict = {"type": "string"}
    for _ in range(400):
        schema = {"type": "object", "properties": {"x": schema}}
    with pytest.raises(ValidationError, match="nested too deeply"):
        validate_parameters_schema(schema)


def test_a_new_tool_form_starts_from_an_empty_object_schema(tenant_a: TenantWorld) -> None:
    html = tenant_a.client_for("editor").get("/tools/new/").content.decode()
    assert "&quot;type&quot;: &quot;object&quot;" in html
    assert ">null<" not in html
