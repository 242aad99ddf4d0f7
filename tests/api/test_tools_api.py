"""REST API for tools: CRUD, validation as field errors, write-only secrets, isolation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agents.models import Agent
from tests.api import api_client
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, ToolFactory
from tests.tools.refused_urls import ACCEPTED_URLS, REFUSED_URLS
from tools.models import ToolDefinition

pytestmark = pytest.mark.django_db

PARAMETERS = {
    "type": "object",
    "properties": {"party_size": {"type": "integer"}},
    "required": ["party_size"],
}


def _webhook_tool(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "book_table",
        "description": "Book a table for the caller.",
        "parameters": PARAMETERS,
        "webhook": {
            "url": "https://hooks.example.com/book",
            "method": "POST",
            "headers": {"X-Api-Key": "hunter2-secret-header"},
        },
    }
    body.update(overrides)
    return body


def _post(world: TenantWorld, body: Any, path: str = "/v1/tools") -> Any:
    return api_client(world.secret).post(path, body, content_type="application/json")


def _patch(world: TenantWorld, tool_id: str, body: Any) -> Any:
    return api_client(world.secret).patch(
        f"/v1/tools/{tool_id}", body, content_type="application/json"
    )


def test_create_webhook_tool_stores_it_and_shows_the_signing_secret_once(
    tenant_a: TenantWorld,
) -> None:
    response = _post(tenant_a, _webhook_tool())
    assert response.status_code == 201
    body = response.json()
    tool = ToolDefinition.objects.get(public_id=body["id"])
    assert tool.tenant == tenant_a.tenant
    assert (tool.name, tool.kind, tool.execution) == ("book_table", "webhook", "inline")
    assert tool.parameters == PARAMETERS
    assert tool.headers == {"X-Api-Key": "hunter2-secret-header"}
    assert body["signing_secret"] == tool.signing_secret
    assert body["signing_secret"].startswith("whsec_")
    assert body["webhook"] == {
        "url": "https://hooks.example.com/book",
        "method": "POST",
        "has_headers": True,
    }
    assert body["timeout_seconds"] == 10  # the model's default
    assert "hunter2" not in response.content.decode()

    client = api_client(tenant_a.secret)
    for later in (
        client.get(f"/v1/tools/{tool.public_id}"),
        client.get("/v1/tools"),
        _patch(tenant_a, tool.public_id, {"description": "Book a table."}),
    ):
        assert later.status_code == 200
        assert tool.signing_secret not in later.content.decode()
        assert "signing_secret" not in later.content.decode()
        assert "hunter2" not in later.content.decode()


def test_create_builtin_and_mcp_tools(tenant_a: TenantWorld) -> None:
    builtin = _post(
        tenant_a,
        {
            "name": "end_call",
            "description": "Hang up.",
            "kind": "builtin",
            "builtin_name": "end_call",
        },
    )
    assert builtin.status_code == 201
    assert builtin.json()["builtin_name"] == "end_call"
    mcp = _post(
        tenant_a,
        {
            "name": "crm",
            "description": "The CRM's tools.",
            "kind": "mcp",
            "execution": "background",
            "mcp": {
                "server_url": "https://mcp.example.com/sse",
                "tool_names": ["find_customer"],
                "auth_header": "Bearer mcp-secret-token",
            },
        },
    )
    assert mcp.status_code == 201
    assert mcp.json()["mcp"] == {
        "server_url": "https://mcp.example.com/sse",
        "tool_names": ["find_customer"],
        "has_auth_header": True,
    }
    assert "mcp-secret-token" not in mcp.content.decode()
    tool = ToolDefinition.objects.get(public_id=mcp.json()["id"])
    assert (tool.mcp_auth_header, tool.execution) == ("Bearer mcp-secret-token", "background")


def test_list_is_ordered_by_name_and_paginated(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    for name in ("charlie", "alpha", "bravo"):
        ToolFactory(tenant=tenant_a.tenant, name=name)
    ToolFactory(tenant=tenant_b.tenant, name="aaa_other_tenant")
    client = api_client(tenant_a.secret)
    body = client.get("/v1/tools").json()
    assert [tool["name"] for tool in body["items"]] == ["alpha", "bravo", "charlie"]
    assert body["count"] == 3
    second_page = client.get("/v1/tools?limit=2&offset=2").json()
    assert [tool["name"] for tool in second_page["items"]] == ["charlie"]
    assert (second_page["limit"], second_page["offset"]) == (2, 2)
    bad = client.get("/v1/tools?limit=0")
    assert bad.status_code == 400
    assert "limit" in bad.json()["error"]["fields"]


def test_patch_changes_only_the_sent_fields_and_reversions_agents(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant, webhook_headers='{"X-Key": "keep-me"}')
    agent = AgentFactory(tenant=tenant_a.tenant, tools=[tool])
    assert agent.versions.count() == 1
    response = _patch(
        tenant_a, tool.public_id, {"description": "Find an order.", "webhook": {"method": "GET"}}
    )
    assert response.status_code == 200
    tool.refresh_from_db()
    assert (tool.description, tool.http_method) == ("Find an order.", "GET")
    assert tool.webhook_url == "https://hooks.example.com/orders"
    assert tool.headers == {"X-Key": "keep-me"}
    assert agent.versions.count() == 2
    assert agent.versions.get(number=2).config["tools"][0]["description"] == "Find an order."

    cleared = _patch(tenant_a, tool.public_id, {"webhook": {"headers": {}}})
    assert cleared.json()["webhook"]["has_headers"] is False
    tool.refresh_from_db()
    assert tool.webhook_headers == ""


def test_delete_removes_the_tool_and_reversions_agents(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant)
    agent = AgentFactory(tenant=tenant_a.tenant, tools=[tool])
    response = api_client(tenant_a.secret).delete(f"/v1/tools/{tool.public_id}")
    assert response.status_code == 204
    assert not ToolDefinition.objects.filter(pk=tool.pk).exists()
    agent = Agent.objects.get(pk=agent.pk)
    assert agent.current_version is not None
    assert agent.current_version.number == 2
    assert agent.current_version.config["tools"] == []
    again = api_client(tenant_a.secret).delete(f"/v1/tools/{tool.public_id}")
    assert again.status_code == 404


def test_duplicate_gets_a_new_name_id_and_signing_secret(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant, name="lookup")
    response = _post(tenant_a, {}, path=f"/v1/tools/{tool.public_id}/duplicate")
    assert response.status_code == 201
    body = response.json()
    copy = ToolDefinition.objects.get(public_id=body["id"])
    assert (copy.name, copy.tenant) == ("lookup_copy", tenant_a.tenant)
    assert copy.public_id != tool.public_id
    assert body["signing_secret"] == copy.signing_secret != tool.signing_secret


def _field_errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    return dict(error["fields"])


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"name": "book table"}, "name", "no spaces"),
        ({"name": ""}, "name", "blank"),
        (
            {"parameters": {"type": "object", "properties": {"x": {"type": "nope"}}}},
            "parameters",
            "Not a valid JSON Schema",
        ),
        ({"parameters": {"type": "string"}}, "parameters", '"type": "object"'),
        ({"parameters": ["not", "an", "object"]}, "parameters", "dictionary"),
        (
            {"parameters": {"type": "object", "properties": {}, "required": ["ghost"]}},
            "parameters",
            "ghost",
        ),
        ({"webhook": {"url": "ftp://files.example.com/book"}}, "webhook.url", "http"),
        ({"webhook": {"url": ""}}, "webhook.url", "needs the URL"),
        ({"webhook": {"url": "https://x.example", "method": "TRACE"}}, "webhook.method", "POST"),
        (
            {"webhook": {"url": "https://x.example", "headers": {"X": 1}}},
            "webhook.headers.X",
            "string",
        ),
        ({"description": "x" * 1025}, "description", "at most 1024 characters"),
        (
            {"webhook": {"url": "https://x.example", "headers": {"X": "v" * 8193}}},
            "webhook.headers.X",
            "at most 8192",
        ),
        (
            {
                "webhook": {
                    "url": "https://x.example",
                    "headers": {f"X-{n}": "v" for n in range(51)},
                }
            },
            "webhook.headers",
            "at most 50",
        ),
        (
            {"kind": "mcp", "mcp": {"server_url": "https://x.example", "auth_header": "x" * 8193}},
            "mcp.auth_header",
            "at most 8192",
        ),
        (
            {"kind": "mcp", "mcp": {"server_url": "https://x.example", "tool_names": [""]}},
            "mcp.tool_names.0",
            "at least 1",
        ),
        ({"kind": "teleport"}, "kind", "webhook"),
        ({"kind": "builtin"}, "builtin_name", "built-in"),
        ({"kind": "builtin", "builtin_name": "launch_rockets"}, "builtin_name", "valid choice"),
        ({"kind": "mcp", "webhook": None}, "webhook", "valid dictionary"),
        ({"kind": "mcp", "mcp": {"server_url": "gopher://x"}}, "mcp.server_url", "http"),
        ({"timeout_seconds": 0}, "timeout_seconds", "greater than or equal"),
        ({"timeout_seconds": "soon"}, "timeout_seconds", "integer"),
        ({"timeout_seconds": "30"}, "timeout_seconds", "integer"),
        ({"timeout_seconds": True}, "timeout_seconds", "integer"),
        ({"execution": "later"}, "execution", "inline"),
        ({"surprise": True}, "surprise", "not permitted"),
        ({"example_phrases": "book a table"}, "example_phrases", "valid list"),
        ({"example_phrases": ["book a table", 3]}, "example_phrases.1", "valid string"),
        ({"example_phrases": ["ok", " "]}, "example_phrases", "Phrase 2 is empty."),
        ({"example_phrases": ["x" * 201]}, "example_phrases", "longer than 200 characters"),
        ({"example_phrases": ["a table"] * 21}, "example_phrases", "At most 20 example phrases"),
        ({"kind": "mock"}, "mock_response", "needs the reply"),
        ({"kind": "mock", "mock_response": "{party_size} {who}"}, "mock_response", "{who}"),
        ({"kind": "mock", "mock_response": "x" * 2001}, "mock_response", "at most 2000"),
        ({"mock_response": None}, "mock_response", "valid string"),
    ],
)
def test_invalid_tools_are_400_with_field_messages(
    tenant_a: TenantWorld, overrides: dict[str, Any], field: str, fragment: str
) -> None:
    fields = _field_errors(_post(tenant_a, _webhook_tool(**overrides)))
    assert field in fields, fields
    assert fragment in " ".join(fields[field])
    assert not ToolDefinition.objects.exists()


def test_duplicate_tool_name_is_a_name_error(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    ToolFactory(tenant=tenant_a.tenant, name="book_table")
    fields = _field_errors(_post(tenant_a, _webhook_tool()))
    assert "already taken" in fields["name"][0]
    assert ToolDefinition.objects.filter(tenant=tenant_a.tenant).count() == 1
    # The same name in another tenant is fine.
    assert _post(tenant_b, _webhook_tool()).status_code == 201


def test_patch_to_a_taken_name_or_bad_value_changes_nothing(tenant_a: TenantWorld) -> None:
    ToolFactory(tenant=tenant_a.tenant, name="taken")
    tool = ToolFactory(tenant=tenant_a.tenant, name="mine")
    assert "name" in _field_errors(_patch(tenant_a, tool.public_id, {"name": "taken"}))
    assert "name" in _field_errors(_patch(tenant_a, tool.public_id, {"name": None}))
    assert "description" in _field_errors(_patch(tenant_a, tool.public_id, {"description": ""}))
    tool.refresh_from_db()
    assert tool.name == "mine"
    assert tool.description == "Look up an order by its number."


def test_other_tenants_tools_are_404_and_unchanged(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    tool = ToolFactory(tenant=tenant_b.tenant, name="bistro_tool")
    client = api_client(tenant_a.secret)
    path = f"/v1/tools/{tool.public_id}"
    responses = [
        client.get(path),
        client.patch(path, {"name": "stolen"}, content_type="application/json"),
        client.delete(path),
        client.post(f"{path}/duplicate"),
        client.get("/v1/tools/tool_does_not_exist"),
    ]
    for response in responses:
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "not_found"
        assert response.json()["error"]["code"] == "not_found"
    tool.refresh_from_db()
    assert tool.name == "bistro_tool"
    assert ToolDefinition.objects.count() == 1


@pytest.mark.parametrize(
    "raw_body",
    [
        "{",
        "not json at all",
        "[]",
        "[1, 2, 3]",
        "null",
        "42",
        '"a string"',
        "true",
        '{"name": 5, "description": ["x"]}',
        '{"name": "ok", "description": "d", "parameters": "oops"}',
        '{"name": "ok", "description": "d", "webhook": "https://x.example"}',
        '{"name": "ok", "description": "d", "webhook": {"url": 12, "headers": []}}',
        '{"name": "ok", "description": "d", "mcp": {"tool_names": "all"}}',
        '{"name": "' + "x" * 5000 + '", "description": "d"}',
        '{"name": "\\u0000", "description": "\\ud800"}',
        '{"name": "ok", "description": "d", "timeout_seconds": 1e400}',
        '{"name": "ok", "description": "d", "parameters": {"$ref": "http://evil.example/s"}}',
        "\xff\xfe garbage",
        '{"name": "ok", "description": "d", "parameters": {"type": "object", "default": NaN}}',
        '{"name": "ok", "description": "d", "timeout_seconds": Infinity}',
    ],
)
def test_garbage_bodies_are_400_never_500(tenant_a: TenantWorld, raw_body: str) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant, name="existing")
    client = api_client(tenant_a.secret)
    for response in (
        client.post("/v1/tools", raw_body, content_type="application/json"),
        client.patch(f"/v1/tools/{tool.public_id}", raw_body, content_type="application/json"),
    ):
        assert response.status_code == 400, response.content
        assert response.json()["error"]["type"] == "invalid_request_error"
    assert ToolDefinition.objects.count() == 1


def test_oversized_body_is_413_json(tenant_a: TenantWorld) -> None:
    body = json.dumps({"name": "big", "description": "x" * 3_000_000})
    response = _post(tenant_a, body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert not ToolDefinition.objects.exists()


def test_malformed_json_has_its_own_code_and_says_why(tenant_a: TenantWorld) -> None:
    response = _post(tenant_a, "{", path="/v1/tools")
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_json")
    assert error["message"].startswith("The request body is not valid JSON: Expecting")
    nan = _post(tenant_a, '{"name": "x", "description": "d", "timeout_seconds": NaN}')
    assert nan.json()["error"]["message"] == (
        "The request body is not valid JSON: NaN is not a JSON number."
    )


def _nested_parameters(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"inner": schema}}
    return schema


def test_deeply_nested_parameters_are_refused_not_a_crash(tenant_a: TenantWorld) -> None:
    # 400 levels would exhaust jsonschema's recursion while checking the schema.
    response = _post(tenant_a, _webhook_tool(parameters=_nested_parameters(400)))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_json"
    assert "nested more than 32 deep" in error["message"]
    assert not ToolDefinition.objects.exists()

    # Ten levels of objects, as much as OpenAI's function schemas allow, are fine.
    accepted = _post(tenant_a, _webhook_tool(parameters=_nested_parameters(10)))
    assert accepted.status_code == 201, accepted.content
    assert ToolDefinition.objects.get().parameters == _nested_parameters(10)


def test_a_mock_tool_with_example_phrases_round_trips_and_re_versions_agents(
    tenant_a: TenantWorld,
) -> None:
    created = _post(
        tenant_a,
        {
            "name": "book_table",
            "description": "Book a table.",
            "parameters": PARAMETERS,
            "kind": "mock",
            "mock_response": "Your table for {party_size} is booked.",
            "example_phrases": ["book a table", "a table  for two"],
        },
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["kind"] == "mock"
    assert body["mock_response"] == "Your table for {party_size} is booked."
    assert body["example_phrases"] == ["book a table", "a table for two"]
    tool = ToolDefinition.objects.get(public_id=body["id"])
    assert tool.example_phrases == ["book a table", "a table for two"]
    fetched = api_client(tenant_a.secret).get(f"/v1/tools/{tool.public_id}").json()
    assert fetched["example_phrases"] == body["example_phrases"]
    assert fetched["mock_response"] == body["mock_response"]

    agent = AgentFactory(tenant=tenant_a.tenant, tools=[tool])
    patched = _patch(tenant_a, tool.public_id, {"example_phrases": ["can I make a reservation"]})
    assert patched.status_code == 200, patched.content
    assert patched.json()["mock_response"] == "Your table for {party_size} is booked."
    latest = agent.versions.order_by("-number").first()
    assert latest is not None
    assert latest.number == 2
    assert latest.config["tools"][0]["example_phrases"] == ["can I make a reservation"]
    assert latest.config["tools"][0]["mock_response"] == "Your table for {party_size} is booked."

    refused = _patch(tenant_a, tool.public_id, {"mock_response": "At {time}."})
    assert "{time}" in _field_errors(refused)["mock_response"][0]
    tool.refresh_from_db()
    assert tool.mock_response == "Your table for {party_size} is booked."
    assert agent.versions.count() == 2


# --- URLs Koe may not call ----------------------------------------------------------------


def _refused_field(response: Any, field: str) -> str:
    """The messages of the one field refused, after checking the whole error body."""
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_fields")
    assert field in error["message"]
    assert list(error["fields"]) == [field]
    return " ".join(error["fields"][field])


@pytest.mark.parametrize(("url", "message"), REFUSED_URLS)
def test_a_webhook_url_that_is_not_public_is_refused(
    url: str, message: str, tenant_a: TenantWorld, settings: Any
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = []
    response = _post(tenant_a, _webhook_tool(webhook={"url": url}))

    assert message in _refused_field(response, "webhook.url")
    assert not ToolDefinition.objects.exists()


@pytest.mark.parametrize(("url", "message"), REFUSED_URLS)
def test_an_mcp_server_url_that_is_not_public_is_refused_without_asking_it(
    url: str, message: str, tenant_a: TenantWorld, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = []
    asked: list[Any] = []
    monkeypatch.setattr("tools.actions.list_tools_of", lambda tool: asked.append(tool))

    response = _post(
        tenant_a, _webhook_tool(kind="mcp", webhook={"url": ""}, mcp={"server_url": url})
    )

    assert message in _refused_field(response, "mcp.server_url")
    assert not ToolDefinition.objects.exists()
    assert asked == []


def test_patching_in_a_refused_url_changes_nothing(tenant_a: TenantWorld, settings: Any) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = []
    tool = ToolFactory(tenant=tenant_a.tenant, webhook_url="https://hooks.example.com/book")
    agent = AgentFactory(tenant=tenant_a.tenant, tools=[tool])

    response = _patch(tenant_a, tool.public_id, {"webhook": {"url": "http://10.0.0.1/hook"}})

    assert "10.0.0.1 is a private address" in _refused_field(response, "webhook.url")
    tool.refresh_from_db()
    assert tool.webhook_url == "https://hooks.example.com/book"
    assert agent.versions.count() == 1


@pytest.mark.parametrize("url", ACCEPTED_URLS)
def test_public_webhook_urls_are_accepted(url: str, tenant_a: TenantWorld, settings: Any) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = []
    response = _post(tenant_a, _webhook_tool(webhook={"url": url}))

    assert response.status_code == 201, response.content
    assert ToolDefinition.objects.get().webhook_url == url


def test_the_allowlist_admits_the_addresses_it_names(tenant_a: TenantWorld, settings: Any) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = ["127.0.0.1", "10.0.0.0/8"]
    loopback = _post(tenant_a, _webhook_tool(webhook={"url": "http://127.0.0.1:9000/hook"}))
    private = _post(
        tenant_a, _webhook_tool(name="lookup", webhook={"url": "http://10.1.2.3/lookup"})
    )
    metadata = _post(
        tenant_a, _webhook_tool(name="meta", webhook={"url": "http://169.254.169.254/"})
    )

    assert (loopback.status_code, private.status_code) == (201, 201)
    assert "cloud metadata" in _refused_field(metadata, "webhook.url")
    assert sorted(ToolDefinition.objects.values_list("webhook_url", flat=True)) == [
        "http://10.1.2.3/lookup",
        "http://127.0.0.1:9000/hook",
    ]
