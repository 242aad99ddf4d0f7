"""A tool's page: the "Test tool" panel, its invocation history and statistics; the call
page's invocations; built-in tools every tenant has and the agent form offers."""

from __future__ import annotations

import datetime
import html
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from calls.models import CallSession
from events.models import OutboundEvent
from foundation import signing
from tenancy.roles import Role
from tests.conftest import TenantWorld
from tests.dashboard.test_agents import agent_data
from tests.factories import AgentFactory, ToolFactory
from tests.fakes.http_receiver import HttpReceiver, Reply
from tools.actions import ensure_builtin_tools
from tools.invocation_stats import percentile, tool_summaries
from tools.invocations import ToolInvocation
from tools.models import ToolDefinition
from tools.trials import run_test

PARAMETERS = {
    "type": "object",
    "properties": {
        "party_size": {"type": "integer", "minimum": 1},
        "time": {"type": "string", "pattern": r"^\d\d:\d\d$"},
    },
    "required": ["party_size", "time"],
}
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def receiver(settings: Any) -> Iterator[HttpReceiver]:
    settings.KOE_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    with HttpReceiver() as server:
        yield server


def text_of(response: Any) -> str:
    return html.unescape(response.content.decode())


def plain(markup: str) -> str:
    """The text as read: tags dropped, spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", markup).split())


def result_status(page: str) -> str:
    """The test panel's status line: "OK" or "Error: <code>"."""
    return plain(page.split("<dt>Status</dt>", 1)[1].split("</dd>", 1)[0])


def page_url(tool: ToolDefinition) -> str:
    return reverse("dashboard:tool_edit", args=[tool.public_id])


def run_url(tool: ToolDefinition) -> str:
    return reverse("dashboard:tool_test", args=[tool.public_id])


def mock_tool(world: TenantWorld, **changes: Any) -> ToolDefinition:
    fields: dict[str, Any] = {
        "tenant": world.tenant,
        "name": "book_table",
        "kind": "mock",
        "webhook_url": "",
        "parameters": PARAMETERS,
        "mock_response": "Booked for {party_size} at {time}.",
    }
    fields.update(changes)
    return ToolFactory(**fields)


def invocation(of: ToolDefinition, **changes: Any) -> ToolInvocation:
    fields: dict[str, Any] = {
        "tenant": of.tenant,
        "tool": of,
        "tool_name": of.name,
        "function_call_id": f"fc_{ToolInvocation.objects.count()}",
        "source": "test",
        "execution": "inline",
        "status": "succeeded",
        "attempts": 1,
        "delivery": "inline",
    }
    fields.update(changes)
    fields.setdefault("idempotency_key", f"test:{fields['function_call_id']}")
    return ToolInvocation.objects.create(**fields)


def a_call(world: TenantWorld, **changes: Any) -> CallSession:
    agent = AgentFactory(tenant=world.tenant)
    fields: dict[str, Any] = {
        "tenant": world.tenant,
        "agent": agent,
        "agent_version": agent.current_version,
        "agent_name": agent.name,
        "version_number": 1,
        "channel": "api",
        "provider": "local",
        "model": "koe-local",
        "status": "ended",
    }
    fields.update(changes)
    return CallSession.objects.create(**fields)


# --- running a test ---------------------------------------------------------------------


def test_the_panel_starts_from_sample_arguments_made_from_the_schema(
    tenant_a: TenantWorld,
) -> None:
    tool = mock_tool(tenant_a)

    response = tenant_a.client_for(Role.EDITOR).get(page_url(tool))

    page = text_of(response)
    assert response.status_code == 200
    assert "Test tool" in page
    assert f'action="{run_url(tool)}"' in page
    sample = response.context["test_form"].initial["arguments"]
    assert json.loads(sample) == {"party_size": 1, "time": "19:00"}
    assert sample in page


def test_a_mock_tool_runs_and_is_recorded_as_a_test(tenant_a: TenantWorld) -> None:
    tool = mock_tool(tenant_a, execution="background")

    response = tenant_a.client_for(Role.EDITOR).post(
        run_url(tool), {"arguments": '{"party_size": 4, "time": "20:00"}'}
    )

    page = text_of(response)
    assert response.status_code == 200
    assert "<html" in page  # without htmx: the whole tool page
    assert "Booked for 4 at 20:00." in page
    assert result_status(page) == "OK"
    run = ToolInvocation.objects.get()
    assert (run.tenant, run.tool, run.call, run.tool_name) == (
        tenant_a.tenant,
        tool,
        None,
        tool.name,
    )
    assert (run.source, run.status, run.error_code) == ("test", "succeeded", "")
    # A background tool runs inline when tested: the result is there at once.
    assert (run.execution, run.delivery, run.attempts) == ("background", "inline", 1)
    assert run.function_call_id.startswith("test_")
    assert run.idempotency_key == f"test:{run.function_call_id}"
    assert run.stores_content
    assert run.arguments == {"party_size": 4, "time": "20:00"}
    assert json.loads(run.result) == {"ok": True, "message": "Booked for 4 at 20:00."}
    assert run.duration_ms is not None and run.finished_at is not None
    assert f"{run.duration_ms} ms" in page
    assert run.public_id in page


def test_with_htmx_the_panel_comes_back_alone_with_the_history_refreshed(
    tenant_a: TenantWorld,
) -> None:
    tool = mock_tool(tenant_a)

    response = tenant_a.client_for(Role.EDITOR).post(
        run_url(tool), {"arguments": '{"party_size": 2, "time": "19:00"}'}, **HX
    )

    page = text_of(response)
    assert response.status_code == 200
    assert "<html" not in page
    assert 'id="test-result"' in page
    assert "Booked for 2 at 19:00." in page
    assert 'id="tool-history" aria-labelledby="history-heading" hx-swap-oob="true"' in page
    assert "Test from the dashboard" in page.split('id="tool-history"', 1)[1]


def test_a_webhook_test_shows_the_signed_request_and_the_response(
    tenant_a: TenantWorld, receiver: HttpReceiver
) -> None:
    tool = ToolFactory(
        tenant=tenant_a.tenant,
        name="book_table",
        parameters=PARAMETERS,
        webhook_url=receiver.url("/hooks/book"),
        webhook_headers='{"X-Api-Key": "hdr-secret-77", "X-Region": "eu-west"}',
    )
    receiver.reply(Reply(body=b'{"booked": true, "reference": "B-4242"}'))

    response = tenant_a.client_for(Role.EDITOR).post(
        run_url(tool), {"arguments": '{"party_size": 3, "time": "18:30"}'}, **HX
    )

    page = text_of(response)
    assert response.status_code == 200
    [received] = receiver.requests
    signing.verify(tool.signing_secret, received.headers["koe-signature"], received.body)
    body = json.loads(received.body)
    assert body["arguments"] == {"party_size": 3, "time": "18:30"}
    assert body["call_id"] == "" and body["function_call_id"].startswith("test_")
    # The exact request: method and URL, headers (secrets redacted), body as sent.
    assert f"POST {receiver.url('/hooks/book')}" in page
    assert "Koe-Signature" in page
    assert received.headers["koe-signature"] in page
    assert "Idempotency-Key" in page
    assert f"test:{body['function_call_id']}" in page
    assert "eu-west" in page
    assert "hdr-secret-77" not in page
    assert "[redacted]" in page
    assert received.body.decode() in page
    # The response: status, headers and body.
    assert "200" in page.split("Response", 1)[1]
    assert "Content-Type" in page.split("Response", 1)[1]
    assert '{"booked": true, "reference": "B-4242"}' in page
    run = ToolInvocation.objects.get()
    assert (run.status, run.tool_name) == ("succeeded", "book_table")
    assert json.loads(run.result) == {"booked": True, "reference": "B-4242"}


def test_a_failing_webhook_shows_the_error_the_model_would_get(
    tenant_a: TenantWorld, receiver: HttpReceiver
) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant, webhook_url=receiver.url("/down"))
    receiver.reply(Reply(status=503, body=b"maintenance", headers={"Content-Type": "text/plain"}))

    response = tenant_a.client_for(Role.EDITOR).post(
        run_url(tool), {"arguments": '{"order_number": "A-1"}'}, **HX
    )

    page = text_of(response)
    assert result_status(page) == "Error: http_error"
    assert "503" in page.split("Response", 1)[1]
    assert "maintenance" in page
    run = ToolInvocation.objects.get()
    assert (run.status, run.error_code, run.attempts) == ("failed", "http_error", 1)


def test_a_transfer_to_human_test_touches_no_call(tenant_a: TenantWorld) -> None:
    transfer = ensure_builtin_tools(tenant_a.tenant)[1]
    call = a_call(tenant_a, status="active")

    response = tenant_a.client_for(Role.EDITOR).post(
        run_url(transfer), {"arguments": '{"reason": "Wants to complain in person"}'}, **HX
    )

    call.refresh_from_db()
    assert response.status_code == 200
    assert "A member of staff has been asked to follow up" in text_of(response)
    assert not call.needs_follow_up
    assert not OutboundEvent.objects.exists()
    assert ToolInvocation.objects.get().status == "succeeded"


def test_built_ins_run_without_a_call(tenant_a: TenantWorld) -> None:
    tenant_a.tenant.time_zone = "Asia/Tokyo"
    tenant_a.tenant.save()
    end_call, _, current_time = ensure_builtin_tools(tenant_a.tenant)

    ended, ended_run = run_test(end_call, "{}")
    told, told_run = run_test(current_time, "")

    assert ended.ok and ended.end_call
    assert ended_run.call is None and ended_run.status == "succeeded"
    assert json.loads(told.output)["time_zone"] == "Asia/Tokyo"
    assert told_run.arguments == {}


def test_broken_json_is_a_field_error_and_nothing_runs(
    tenant_a: TenantWorld, receiver: HttpReceiver
) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant, webhook_url=receiver.url("/hook"))
    typed = '{\n  "order_number": "A-1",\n  oops\n}'

    response = tenant_a.client_for(Role.EDITOR).post(run_url(tool), {"arguments": typed}, **HX)

    page = text_of(response)
    assert response.status_code == 200
    assert response.context["test_form"].errors["arguments"] == [
        "Line 3: Expecting property name enclosed in double quotes (column 3)."
    ]
    assert "Nothing was run" in page
    assert f">\n{typed}</textarea>" in page  # kept exactly as typed
    assert receiver.connections == 0
    assert not ToolInvocation.objects.exists()


def test_arguments_the_schema_refuses_are_the_models_structured_error(
    tenant_a: TenantWorld,
) -> None:
    tool = mock_tool(tenant_a)

    response = tenant_a.client_for(Role.EDITOR).post(
        run_url(tool), {"arguments": '{"party_size": "four"}'}, **HX
    )

    page = text_of(response)
    assert result_status(page) == "Error: invalid_arguments"
    assert "party_size: 'four' is not of type 'integer'" in page
    assert "'time' is a required property" in page
    run = ToolInvocation.objects.get()
    assert (run.status, run.error_code, run.attempts) == ("failed", "invalid_arguments", 0)
    assert run.arguments == {"party_size": "four"}
    error = json.loads(run.result)["error"]
    assert error["code"] == "invalid_arguments"
    assert "party_size: 'four' is not of type 'integer'" in error["details"]


def test_an_mcp_tool_tests_one_of_its_remote_tools(tenant_a: TenantWorld) -> None:
    listed = [
        {
            "name": "add",
            "description": "Adds two numbers.",
            "input_schema": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
        },
        {
            "name": "greet",
            "description": "Greets someone by name.",
            "input_schema": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            },
        },
    ]
    tool = ToolFactory(
        tenant=tenant_a.tenant,
        name="helper",
        kind="mcp",
        webhook_url="",
        mcp_server_url="http://10.1.2.3/mcp",  # refused before any connection
        mcp_tools_listed=listed,
    )
    client = tenant_a.client_for(Role.EDITOR)

    first = client.get(page_url(tool))
    switched = client.get(run_url(tool), {"remote_name": "greet"}, **HX)
    ran = client.post(run_url(tool), {"remote_name": "greet", "arguments": '{"name": "Ada"}'}, **HX)

    assert json.loads(first.context["test_form"].initial["arguments"]) == {"a": 1, "b": 1}
    assert '<option value="greet">greet</option>' in text_of(first)
    assert switched.status_code == 200
    assert json.loads(switched.context["test_form"].initial["arguments"]) == {"name": "Alex Smith"}
    assert '<option value="greet" selected>greet</option>' in text_of(switched)
    assert result_status(text_of(ran)) == "Error: blocked_address"
    run = ToolInvocation.objects.get()
    assert (run.tool_name, run.status, run.error_code) == (
        "helper__greet",
        "failed",
        "blocked_address",
    )


def test_an_mcp_tool_without_a_listing_has_nothing_to_run(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(
        tenant=tenant_a.tenant, kind="mcp", webhook_url="", mcp_server_url="http://10.1.2.3/mcp"
    )
    client = tenant_a.client_for(Role.EDITOR)

    page = text_of(client.get(page_url(tool)))
    response = client.post(run_url(tool), {"arguments": "{}"}, **HX)

    assert "have not been listed yet" in page
    assert "Run test" not in page
    assert response.status_code == 200
    assert not ToolInvocation.objects.exists()


# --- who may test -------------------------------------------------------------------------


def test_auditors_see_no_test_panel_and_cannot_run_one(tenant_a: TenantWorld) -> None:
    tool = mock_tool(tenant_a)
    client = tenant_a.client_for(Role.AUDITOR)

    page = text_of(client.get(page_url(tool)))
    posted = client.post(run_url(tool), {"arguments": '{"party_size": 2, "time": "19:00"}'})
    fetched = client.get(run_url(tool))

    assert "Test tool" not in page
    assert "Run test" not in page
    assert run_url(tool) not in page
    assert "Invocations" in page  # the history is for every role
    assert posted.status_code == 403
    assert fetched.status_code == 403
    assert not ToolInvocation.objects.exists()


@pytest.mark.parametrize("role", Role.values)
def test_another_tenants_tool_cannot_be_tested(
    role: str, tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    tool = mock_tool(tenant_b)

    response = tenant_a.client_for(role).post(
        run_url(tool), {"arguments": '{"party_size": 2, "time": "19:00"}'}
    )

    assert response.status_code == 404
    assert not ToolInvocation.objects.exists()


# --- history and statistics ---------------------------------------------------------------


def test_the_history_summarises_the_last_week_and_all_time(tenant_a: TenantWorld) -> None:
    tool = mock_tool(tenant_a)
    other = mock_tool(tenant_a, name="other_tool")
    now = timezone.now()
    for number, duration in enumerate(range(100, 1100, 100)):
        invocation(
            tool,
            duration_ms=duration,
            status="failed" if number in (3, 7) else "succeeded",
            error_code="timeout" if number in (3, 7) else "",
            created_at=now - datetime.timedelta(hours=number + 1),
        )
    invocation(tool, status="running", created_at=now)  # not finished: no error, no duration
    for duration in (5000, 6000):
        invocation(
            tool,
            duration_ms=duration,
            status="failed",
            error_code="http_error",
            created_at=now - datetime.timedelta(days=30),
        )
    invocation(other, duration_ms=99999, status="failed")  # another tool's: not counted

    response = tenant_a.client_for(Role.AUDITOR).get(page_url(tool))

    week, all_time = response.context["summaries"]
    assert week[0] == "Last 7 days"
    assert (week[1].count, week[1].failed, week[1].finished) == (11, 2, 10)
    assert (week[1].error_rate, week[1].p50_ms, week[1].p95_ms) == (20.0, 500, 1000)
    assert (all_time[1].count, all_time[1].failed, all_time[1].finished) == (13, 4, 12)
    assert (all_time[1].error_rate, all_time[1].p50_ms, all_time[1].p95_ms) == (33.3, 600, 6000)
    page = plain(text_of(response))
    assert "Last 7 days 11 20.0% (2 of 10) 500 ms 1000 ms" in page
    assert "All time 13 33.3% (4 of 12) 600 ms 6000 ms" in page


def test_a_tool_that_never_ran_has_empty_statistics(tenant_a: TenantWorld) -> None:
    tool = mock_tool(tenant_a)

    [(_, week), (_, all_time)] = tool_summaries(tool)

    assert week.count == all_time.count == 0
    assert week.error_rate is None and week.p50_ms is None and week.p95_ms is None


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7], 0.95) == 7
    assert percentile([1, 2, 3, 4], 0.5) == 2
    assert percentile(list(range(1, 101)), 0.95) == 95


def test_the_history_is_paged_newest_first(tenant_a: TenantWorld) -> None:
    tool = mock_tool(tenant_a)
    now = timezone.now()
    runs = [
        invocation(tool, duration_ms=number, created_at=now - datetime.timedelta(minutes=number))
        for number in range(30)
    ]
    client = tenant_a.client_for(Role.AUDITOR)

    first = client.get(page_url(tool))
    second = client.get(page_url(tool), {"page": 2})

    assert [row.invocation for row in first.context["history_rows"]] == runs[:25]
    assert [row.invocation for row in second.context["history_rows"]] == runs[25:]
    assert "Page 1" in text_of(first)
    assert f"{page_url(tool)}?page=2#tool-history" in text_of(first)
    assert "?page=3" not in text_of(second)  # the last page knows it is the last
    assert f"{page_url(tool)}?page=1#tool-history" in text_of(second)


def test_the_history_links_calls_and_shows_content_only_when_stored(
    tenant_a: TenantWorld,
) -> None:
    tool = mock_tool(tenant_a)
    call = a_call(tenant_a)
    invocation(
        tool,
        call=call,
        source="call",
        idempotency_key=f"{call.public_id}:fc_private",
        stores_content=False,
        arguments=None,
        result="",
        duration_ms=42,
        delivery="delivered",
        execution="background",
        attempts=2,
    )
    invocation(
        tool,
        stores_content=True,
        arguments={"note": "<b>bold</b>"},
        result='{"message": "<script>alert(1)</script>"}',
        duration_ms=7,
    )

    response = tenant_a.client_for(Role.AUDITOR).get(page_url(tool))

    raw = response.content.decode()
    assert reverse("dashboard:call_detail", args=[call.public_id]) in raw
    assert "Delivered to the live call" in raw
    assert "Not stored" in raw
    assert "<script>alert(1)</script>" not in raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in raw
    assert "<b>bold</b>" not in raw
    assert "&lt;b&gt;bold&lt;/b&gt;" in raw


def test_the_call_page_lists_its_tool_invocations(tenant_a: TenantWorld) -> None:
    tool = mock_tool(tenant_a)
    call = a_call(tenant_a)
    invocation(
        tool,
        call=call,
        source="call",
        idempotency_key=f"{call.public_id}:fc_1",
        duration_ms=120,
        delivery="inline",
        created_at=timezone.now() - datetime.timedelta(seconds=5),
    )
    invocation(
        tool,
        call=call,
        source="call",
        tool_name="lookup_gone",
        tool=None,
        idempotency_key=f"{call.public_id}:fc_2",
        status="failed",
        error_code="timeout",
        duration_ms=10001,
        execution="background",
        delivery="call_ended",
    )
    invocation(tool, duration_ms=5)  # a test run: not part of the call

    response = tenant_a.client_for(Role.AUDITOR).get(
        reverse("dashboard:call_detail", args=[call.public_id])
    )

    page = text_of(response)
    assert response.status_code == 200
    section = page.split("Tool invocations", 1)[1].split("Latency", 1)[0]
    assert f'href="{page_url(tool)}">book_table</a>' in section
    assert "120 ms" in section and "Returned to the model at once" in section
    assert "lookup_gone" in section and "(the tool has since been deleted)" in section
    assert "timeout" in section and "10001 ms" in section
    assert "Stored: the call had ended" in section
    assert section.index("book_table") < section.index("lookup_gone")
    assert "5 ms" not in section


# --- built-ins ----------------------------------------------------------------------------


def test_every_tenant_gets_each_built_in_once(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    first = ensure_builtin_tools(tenant_a.tenant)
    again = ensure_builtin_tools(tenant_a.tenant)

    assert first == again
    assert [tool.builtin_name for tool in first] == [
        "end_call",
        "transfer_to_human",
        "current_time",
    ]
    assert [tool.name for tool in first] == ["end_call", "transfer_to_human", "current_time"]
    assert ToolDefinition.objects.filter(tenant=tenant_a.tenant).count() == 3
    assert not ToolDefinition.objects.filter(tenant=tenant_b.tenant).exists()
    for tool in first:
        assert (tool.kind, tool.execution) == ("builtin", "inline")
        tool.full_clean()
    transfer = first[1]
    assert transfer.parameters["required"] == ["reason"]
    assert transfer.parameters["properties"]["reason"]["type"] == "string"


def test_built_ins_are_found_by_what_they_are_not_by_name(tenant_a: TenantWorld) -> None:
    renamed = ToolFactory(
        tenant=tenant_a.tenant, name="hang_up", kind="builtin", builtin_name="end_call"
    )
    ToolFactory(tenant=tenant_a.tenant, name="current_time", kind="mock", mock_response="Noon.")

    tools = ensure_builtin_tools(tenant_a.tenant)

    assert tools[0] == renamed
    assert tools[2].name == "current_time_builtin"
    assert tools[2].builtin_name == "current_time"
    assert ToolDefinition.objects.filter(tenant=tenant_a.tenant, kind="builtin").count() == 3


def test_a_deleted_built_in_comes_back(tenant_a: TenantWorld) -> None:
    end_call = ensure_builtin_tools(tenant_a.tenant)[0]
    end_call.delete()

    restored = ensure_builtin_tools(tenant_a.tenant)[0]

    assert restored.builtin_name == "end_call"
    assert restored.public_id != end_call.public_id


def test_the_agent_form_offers_the_built_ins_to_pick(tenant_a: TenantWorld) -> None:
    own = ToolFactory(tenant=tenant_a.tenant, name="lookup_order")
    client = tenant_a.client_for(Role.EDITOR)

    page = text_of(client.get(reverse("dashboard:agent_create")))

    builtins = {tool.name: tool for tool in ToolDefinition.objects.filter(kind="builtin")}
    assert set(builtins) == {"end_call", "transfer_to_human", "current_time"}
    for tool in [own, *builtins.values()]:
        assert f'value="{tool.public_id}"' in page
    assert "end_call — Built-in: End the call politely" in page
    assert "transfer_to_human — Built-in: Transfer to a human" in page
    response = client.post(
        reverse("dashboard:agent_create"),
        {
            **agent_data(),
            "tools": [own.public_id, builtins["transfer_to_human"].public_id],
        },
    )
    assert response.status_code == 302, response.context["form"].errors
    config = tenant_a.tenant.agents.get().current_version.config
    assert {tool["name"] for tool in config["tools"]} == {"lookup_order", "transfer_to_human"}


def test_the_tool_list_explains_and_shows_the_built_ins(tenant_a: TenantWorld) -> None:
    response = tenant_a.client_for(Role.AUDITOR).get(reverse("dashboard:tool_list"))

    page = text_of(response)
    assert "Built-in tools" in page
    assert "Built-ins are actions Koe performs itself" in page
    for name in ["end_call", "transfer_to_human", "current_time"]:
        tool = ToolDefinition.objects.get(tenant=tenant_a.tenant, name=name)
        assert page_url(tool) in page
    assert "No tools yet" in page  # the tenant's own tools: none yet
