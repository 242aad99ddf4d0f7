"""MCP tools against a real MCP server (the ``mcp`` SDK's FastMCP) on loopback.

The server runs in a thread on a free port behind a gate that counts requests and refuses
any without the right Authorization header, so a test can tell the header was sent and
that a blocked request never reached it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
import uvicorn
from django.core.cache import cache
from django.urls import reverse
from mcp.server.fastmcp import FastMCP

from tenancy.roles import Role
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tools.actions import duplicate_tool, save_tool
from tools.functions import model_functions
from tools.mcp_servers import (
    McpServerError,
    RemoteTool,
    cached_remote_tools,
    call_remote_tool,
    list_remote_tools,
    refresh_mcp_tools,
)
from tools.models import ToolDefinition
from tools.outcomes import ToolOutcome, ToolRequest
from tools.spec import ToolSpec

TOKEN = "Bearer mcp-test-token-42"
ALL_TOOLS = ["add", "greet", "refuse", "slow"]


def build_server() -> FastMCP:
    server = FastMCP("koe-test", host="127.0.0.1")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Adds two numbers."""
        return a + b

    @server.tool()
    def greet(name: str) -> str:
        """Greets someone by name."""
        return f"Hello, {name}!"

    @server.tool()
    def refuse(reason: str) -> str:
        """Always fails."""
        raise ValueError(f"Refused: {reason}")

    @server.tool()
    async def slow(seconds: float) -> str:
        """Answers after a while."""
        await anyio.sleep(seconds)
        return "done"

    return server


class TokenGate:
    """ASGI middleware: counts HTTP requests, answers 401 unless the token is sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests += 1
            if dict(scope["headers"]).get(b"authorization") != TOKEN.encode():
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await self.app(scope, receive, send)


@dataclass
class RunningServer:
    url: str
    gate: TokenGate


def _free_socket() -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    return listener


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[RunningServer]:
    gate = TokenGate(build_server().streamable_http_app())
    listener = _free_socket()
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(gate, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:  # waiting for start-up, not for time to pass
        assert time.monotonic() < deadline, "the MCP server did not start"
        time.sleep(0.01)
    yield RunningServer(url=f"http://127.0.0.1:{port}/mcp", gate=gate)
    server.should_exit = True
    thread.join(10)


@pytest.fixture(autouse=True)
def allow_loopback(settings: Any) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    cache.clear()


def tool_request(arguments: dict[str, Any], **tool: Any) -> ToolRequest:
    return ToolRequest(
        tool=ToolSpec.from_snapshot({"id": "tool_test", "name": "calendar", "kind": "mcp", **tool}),
        arguments=arguments,
        tenant_id="ten_test",
        agent_id="agt_test",
        call_id="call_test",
        function_call_id="fc_1",
    )


def call(
    server: RunningServer, remote_name: str, arguments: dict[str, Any], **options: Any
) -> ToolOutcome:
    options = {"url": server.url, "auth_header": TOKEN, "timeout": 5.0, **options}
    return asyncio.run(
        call_remote_tool(tool_request(arguments), remote_name=remote_name, **options)
    )


def listing_error(url: str, auth_header: str = TOKEN, timeout: float = 5.0) -> McpServerError:
    with pytest.raises(McpServerError) as caught:
        asyncio.run(list_remote_tools(url, auth_header, timeout=timeout))
    return caught.value


def mcp_tool(tenant: TenantWorld, server: RunningServer, **overrides: Any) -> ToolDefinition:
    fields: dict[str, Any] = {
        "tenant": tenant.tenant,
        "name": "calendar",
        "description": "The calendar's tools.",
        "kind": "mcp",
        "mcp_server_url": server.url,
        "mcp_auth_header": TOKEN,
        "mcp_tool_names": ["add", "refuse"],
    }
    fields.update(overrides)
    tool = ToolDefinition(**fields)
    tool.full_clean()
    return tool


# --- the client ---------------------------------------------------------------------------


def test_listing_gives_the_servers_tools_with_their_schemas(mcp_server: RunningServer) -> None:
    tools = asyncio.run(list_remote_tools(mcp_server.url, TOKEN, timeout=5))

    by_name = {tool.name: tool for tool in tools}
    assert sorted(by_name) == ALL_TOOLS
    add = by_name["add"]
    assert add.description == "Adds two numbers."
    assert add.input_schema["type"] == "object"
    assert add.input_schema["required"] == ["a", "b"]
    assert {name: spec["type"] for name, spec in add.input_schema["properties"].items()} == {
        "a": "integer",
        "b": "integer",
    }


def test_calling_a_tool_sends_the_arguments_and_returns_its_result(
    mcp_server: RunningServer,
) -> None:
    added = call(mcp_server, "add", {"a": 2, "b": 40})
    greeted = call(mcp_server, "greet", {"name": "Ada"})

    assert added.ok and json.loads(added.output) == {"result": 42}
    assert greeted.ok and json.loads(greeted.output) == {"result": "Hello, Ada!"}


def test_an_error_result_becomes_a_tool_error_outcome(mcp_server: RunningServer) -> None:
    outcome = call(mcp_server, "refuse", {"reason": "no free slots"})

    assert not outcome.ok
    assert outcome.error_code == "tool_error"
    assert "Refused: no free slots" in json.loads(outcome.output)["error"]["message"]


def test_a_tool_slower_than_the_timeout_is_a_timeout_outcome(mcp_server: RunningServer) -> None:
    started = time.monotonic()
    outcome = call(mcp_server, "slow", {"seconds": 5}, timeout=0.5)

    assert (outcome.ok, outcome.error_code) == (False, "timeout")
    assert time.monotonic() - started < 4


def test_the_authorization_header_is_sent_and_required(mcp_server: RunningServer) -> None:
    error = listing_error(mcp_server.url, auth_header="")
    outcome = call(mcp_server, "add", {"a": 1, "b": 1}, auth_header="Bearer wrong")

    assert error.code == "auth_refused"
    assert "401" in error.message
    assert (outcome.ok, outcome.error_code) == (False, "auth_refused")
    # With the right header, the same server answers (the gate checks it on every request).
    assert call(mcp_server, "add", {"a": 1, "b": 1}).ok


def test_a_server_that_is_not_allowlisted_is_refused_without_a_connection(
    mcp_server: RunningServer, settings: Any
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = []
    requests_before = mcp_server.gate.requests

    error = listing_error(mcp_server.url)
    outcome = call(mcp_server, "add", {"a": 1, "b": 1})

    assert error.code == "blocked_address"
    assert "127.0.0.1 is a loopback address" in error.message
    assert (outcome.ok, outcome.error_code) == (False, "blocked_address")
    assert mcp_server.gate.requests == requests_before


def test_an_unreachable_server_and_one_that_is_not_mcp_are_told_apart(
    mcp_server: RunningServer,
) -> None:
    closed = _free_socket()
    port = closed.getsockname()[1]
    closed.close()

    unreachable = listing_error(f"http://127.0.0.1:{port}/mcp")
    not_mcp = listing_error(mcp_server.url.replace("/mcp", "/not-here"))

    assert unreachable.code == "unreachable"
    assert not_mcp.code == "not_mcp_server"
    assert "404" in not_mcp.message


def test_the_cached_listing_asks_the_server_once(mcp_server: RunningServer) -> None:
    async def list_twice() -> tuple[list[RemoteTool], list[RemoteTool], int]:
        first = await cached_remote_tools("tool_1", mcp_server.url, TOKEN, timeout=5)
        requests_between = mcp_server.gate.requests
        second = await cached_remote_tools("tool_1", mcp_server.url, TOKEN, timeout=5)
        return first, second, mcp_server.gate.requests - requests_between

    first, second, requests_for_second = asyncio.run(list_twice())

    assert first == second
    assert requests_for_second == 0


# --- saving MCP tools ---------------------------------------------------------------------


def test_saving_an_mcp_tool_records_the_listing_and_versions_expose_its_functions(
    tenant_a: TenantWorld, mcp_server: RunningServer
) -> None:
    tool = save_tool(mcp_tool(tenant_a, mcp_server))
    agent = AgentFactory(tenant=tenant_a.tenant, tools=[tool])

    tool.refresh_from_db()
    assert [remote["name"] for remote in tool.mcp_tools_listed] == ALL_TOOLS
    assert tool.mcp_tools_listed_at is not None
    config = agent.current_version.config
    functions = {
        function.name: function
        for function in model_functions(map(ToolSpec.from_snapshot, config["tools"]))
    }
    assert sorted(functions) == ["calendar__add", "calendar__refuse"]
    add = functions["calendar__add"]
    assert (add.remote_name, add.description) == ("add", "Adds two numbers.")
    assert add.parameters["required"] == ["a", "b"]
    assert "mcp-test-token" not in json.dumps(config)


def test_a_failed_listing_keeps_the_edit_and_the_previous_list(
    tenant_a: TenantWorld, mcp_server: RunningServer, settings: Any
) -> None:
    tool = save_tool(mcp_tool(tenant_a, mcp_server))
    agent = AgentFactory(tenant=tenant_a.tenant, tools=[tool])
    listed, listed_at = tool.mcp_tools_listed, tool.mcp_tools_listed_at
    settings.KOE_OUTBOUND_ALLOWLIST = []

    tool.description = "The clinic's calendar."
    tool.mcp_tool_names = ["add"]
    save_tool(tool)

    tool.refresh_from_db()
    agent.refresh_from_db()
    assert tool.description == "The clinic's calendar."
    assert (tool.mcp_tools_listed, tool.mcp_tools_listed_at) == (listed, listed_at)
    functions = model_functions(map(ToolSpec.from_snapshot, agent.current_version.config["tools"]))
    assert [function.name for function in functions] == ["calendar__add"]


def test_a_duplicated_mcp_tool_has_its_own_listing(
    tenant_a: TenantWorld, mcp_server: RunningServer
) -> None:
    tool = save_tool(mcp_tool(tenant_a, mcp_server))

    copy = duplicate_tool(tool)

    copy.refresh_from_db()
    assert [remote["name"] for remote in copy.mcp_tools_listed] == ALL_TOOLS
    assert copy.mcp_tools_listed_at is not None
    assert copy.mcp_tools_listed_at > tool.mcp_tools_listed_at


def test_refresh_gives_the_selected_tools_also_from_async_code(
    tenant_a: TenantWorld, mcp_server: RunningServer
) -> None:
    tool = mcp_tool(tenant_a, mcp_server, mcp_tool_names=["greet"])

    async def refresh_in_a_running_loop() -> list[dict[str, Any]]:
        return refresh_mcp_tools(tool)

    entries = asyncio.run(refresh_in_a_running_loop())

    assert [entry["name"] for entry in entries] == ["greet"]
    assert set(entries[0]) == {"name", "description", "input_schema"}


# --- the dashboard form -------------------------------------------------------------------


def form_data(server: RunningServer, **overrides: str) -> dict[str, str]:
    data = {
        "name": "calendar",
        "description": "The calendar's tools.",
        "parameters": json.dumps({"type": "object", "properties": {}}),
        "kind": "mcp",
        "execution": "inline",
        "timeout_seconds": "10",
        "webhook_url": "",
        "http_method": "POST",
        "webhook_headers": "",
        "builtin_name": "",
        "mcp_server_url": server.url,
        "mcp_auth_header": TOKEN,
        "mcp_tool_names": "add",
        "example_phrases": "",
        "mock_response": "",
    }
    data.update(overrides)
    return data


def test_the_form_refuses_a_tool_name_the_server_does_not_list(
    tenant_a: TenantWorld, mcp_server: RunningServer
) -> None:
    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:tool_create"),
        form_data(mcp_server, mcp_tool_names="add, book_slot"),
    )

    assert response.status_code == 200
    errors = response.context["form"].errors["mcp_tool_names"]
    assert errors == ["The server does not offer book_slot. Its tools: add, greet, refuse, slow."]
    assert not ToolDefinition.objects.filter(name="calendar").exists()


def test_the_form_saves_the_listing_and_warns_when_the_server_cannot_list(
    tenant_a: TenantWorld, mcp_server: RunningServer
) -> None:
    client = tenant_a.client_for(Role.EDITOR)
    client.post(reverse("dashboard:tool_create"), form_data(mcp_server))
    tool = ToolDefinition.objects.get(name="calendar")
    assert [remote["name"] for remote in tool.mcp_tools_listed] == ALL_TOOLS

    response = client.post(
        reverse("dashboard:tool_edit", kwargs={"tool_id": tool.public_id}),
        form_data(
            mcp_server,
            description="Edited while the server refuses Koe.",
            mcp_auth_header="Bearer a-revoked-token",
        ),
        follow=True,
    )

    tool.refresh_from_db()
    assert tool.description == "Edited while the server refuses Koe."
    assert [remote["name"] for remote in tool.mcp_tools_listed] == ALL_TOOLS
    shown = [(message.level_tag, str(message)) for message in response.context["messages"]]
    assert ("success", "Tool “calendar” saved.") in shown
    assert any(
        level == "warning" and "could not be listed" in text and "HTTP 401" in text
        for level, text in shown
    )


@pytest.mark.django_db(transaction=True)
def test_an_agent_in_a_live_call_calls_an_mcp_tool_end_to_end(
    tenant_a: TenantWorld,
    mcp_server: RunningServer,
    scripted_provider: Any,
    settings: Any,
) -> None:
    """The model calls calendar__add; the platform calls the server's add; the sum comes back."""
    from tests.realtime.conftest import auth_headers
    from tests.realtime.helpers import connect, receive, receive_until
    from tools.invocations import ToolInvocation

    settings.KOE_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    tool = save_tool(mcp_tool(tenant_a, mcp_server))
    agent = AgentFactory(
        tenant=tenant_a.tenant,
        provider="openai",
        model="gpt-realtime",
        voice="marin",
        tools=[tool],
    )

    async def scenario() -> list[dict[str, Any]]:
        communicator = await connect(
            f"/v1/realtime?model={agent.public_id}&consent=transcript",
            auth_headers(tenant_a.secret),
        )
        await receive(communicator)
        connection = scripted_provider.connections[0]
        declared = connection.sent[0]["session"]["tools"]
        assert [function["name"] for function in declared] == ["calendar__add", "calendar__refuse"]
        connection.call_function("calendar__add", '{"a": 2, "b": 3}', call_id="call_sum")
        await receive_until(communicator, "response.done")
        deadline = time.monotonic() + 10
        while not any(e["type"] == "conversation.item.create" for e in connection.sent):
            assert time.monotonic() < deadline, "the MCP tool's output never came back"
            await asyncio.sleep(0.05)
        await communicator.disconnect()
        return connection.sent

    sent = asyncio.run(scenario())

    output = next(e for e in sent if e["type"] == "conversation.item.create")["item"]
    assert output["call_id"] == "call_sum"
    assert json.loads(output["output"]) == {"result": 5}
    invocation = ToolInvocation.objects.get()
    assert (invocation.tool_name, invocation.status) == ("calendar__add", "succeeded")
