"""The call list's filters through the page: which calls show, bad input, isolation, paging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.db.models import QuerySet
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

import dashboard.pagination
from calls.models import CallSession, CallStatus, ConsentScope, EndReason
from dashboard.forms.calls import CallFilterForm
from tenancy.roles import Role
from tenancy.scoping import for_tenant
from tests.calls_search.helpers import make_call, page_text, shown
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, ToolFactory
from tools.invocations import ToolInvocation
from tools.models import ToolDefinition

ALL = {"front_short", "front_long", "bookings_tool", "bookings_live"}


def used_tool(call: CallSession, tool: ToolDefinition) -> None:
    """A tool run of a call without transcript consent: the row is kept, its content not."""
    ToolInvocation.objects.create(
        tenant=call.tenant,
        tool=tool,
        tool_name=tool.name,
        call=call,
        function_call_id="fc_1",
        idempotency_key=f"{call.public_id}:fc_1",
        source="call",
        execution="inline",
        status="succeeded",
        stores_content=False,
    )


@pytest.fixture
def calls(tenant_a: TenantWorld) -> dict[str, CallSession]:
    tenant = tenant_a.tenant
    front = AgentFactory(tenant=tenant, name="Front desk")
    bookings = AgentFactory(tenant=tenant, name="Bookings")
    now = timezone.now()
    world = {
        "front_short": make_call(
            tenant,
            front,
            started_at=now - timedelta(days=2),
            duration_s=30,
            billed_amount=Decimal("0.05"),
        ),
        "front_long": make_call(
            tenant,
            front,
            started_at=now - timedelta(days=5),
            duration_s=600,
            end_reason=EndReason.MAX_DURATION,
            consent_scope=ConsentScope.TRANSCRIPT,
            billed_amount=Decimal("1.20"),
            legal_hold=True,
        ),
        "bookings_tool": make_call(
            tenant,
            bookings,
            started_at=now - timedelta(days=10),
            duration_s=120,
            end_reason=EndReason.AGENT,
            consent_scope=ConsentScope.RECORDING,
            billed_amount=Decimal("0.40"),
        ),
        "bookings_live": make_call(
            tenant,
            bookings,
            started_at=now - timedelta(minutes=1),
            status=CallStatus.ACTIVE,
            ended_at=None,
            duration_ms=None,
            end_reason="",
            billed_amount=None,
            cost=None,
        ),
    }
    used_tool(world["bookings_tool"], ToolFactory(tenant=tenant, name="book_table"))
    ToolFactory(tenant=tenant, name="lookup_order")
    return world


def agent_id(calls: dict[str, CallSession], name: str) -> str:
    agent = calls[name].agent
    assert agent is not None
    return agent.public_id


def days_ago(days: int) -> str:
    return (timezone.localdate() - timedelta(days=days)).isoformat()


# --- each filter -----------------------------------------------------------------------------


def test_without_filters_every_call_shows(
    tenant_a: TenantWorld, calls: dict[str, CallSession]
) -> None:
    assert shown(tenant_a.client_for(Role.AUDITOR), calls) == ALL


def test_filter_by_agent(tenant_a: TenantWorld, calls: dict[str, CallSession]) -> None:
    client = tenant_a.client_for(Role.AUDITOR)

    assert shown(client, calls, agent=agent_id(calls, "front_short")) == {
        "front_short",
        "front_long",
    }


def test_filter_by_days(tenant_a: TenantWorld, calls: dict[str, CallSession]) -> None:
    client = tenant_a.client_for(Role.AUDITOR)

    assert shown(client, calls, date_from=days_ago(6)) == {
        "front_short",
        "front_long",
        "bookings_live",
    }
    assert shown(client, calls, date_to=days_ago(3)) == {"front_long", "bookings_tool"}
    assert shown(client, calls, date_from=days_ago(5), date_to=days_ago(5)) == {"front_long"}


def test_days_are_the_tenants_days(tenant_a: TenantWorld) -> None:
    tenant = tenant_a.tenant
    tenant.time_zone = "America/New_York"
    tenant.save()
    # 03:30 UTC on the 10th is 23:30 on the 9th in New York (UTC-4 in July).
    late_evening = make_call(tenant, started_at=datetime(2026, 7, 10, 3, 30, tzinfo=UTC))
    next_morning = make_call(tenant, started_at=datetime(2026, 7, 10, 13, 0, tzinfo=UTC))
    calls = {"late_evening": late_evening, "next_morning": next_morning}
    client = tenant_a.client_for(Role.AUDITOR)

    assert shown(client, calls, date_from="2026-07-09", date_to="2026-07-09") == {"late_evening"}
    assert shown(client, calls, date_from="2026-07-10") == {"next_morning"}
    # The list shows the times in the same zone as the filter reads them.
    assert "9 Jul 2026, 23:30:00" in page_text(client)


def test_filter_by_duration(tenant_a: TenantWorld, calls: dict[str, CallSession]) -> None:
    client = tenant_a.client_for(Role.AUDITOR)

    assert shown(client, calls, min_duration="60") == {"front_long", "bookings_tool"}
    assert shown(client, calls, max_duration="120") == {"front_short", "bookings_tool"}
    assert shown(client, calls, min_duration="100", max_duration="200") == {"bookings_tool"}


def test_filter_by_end_reason(tenant_a: TenantWorld, calls: dict[str, CallSession]) -> None:
    client = tenant_a.client_for(Role.AUDITOR)

    assert shown(client, calls, end_reason=EndReason.MAX_DURATION) == {"front_long"}
    assert shown(client, calls, end_reason=EndReason.CLIENT_CLOSED) == {"front_short"}


def test_filter_by_consent(tenant_a: TenantWorld, calls: dict[str, CallSession]) -> None:
    client = tenant_a.client_for(Role.AUDITOR)

    assert shown(client, calls, consent=ConsentScope.NONE) == {"front_short", "bookings_live"}
    assert shown(client, calls, consent=ConsentScope.RECORDING) == {"bookings_tool"}


def test_filter_by_tool_finds_calls_without_transcript_consent(
    tenant_a: TenantWorld, calls: dict[str, CallSession]
) -> None:
    book_table = ToolDefinition.objects.get(tenant=tenant_a.tenant, name="book_table")
    lookup_order = ToolDefinition.objects.get(tenant=tenant_a.tenant, name="lookup_order")
    used_tool(calls["front_short"], book_table)  # consent none: no transcript, still a run
    client = tenant_a.client_for(Role.AUDITOR)

    assert shown(client, calls, tool=book_table.public_id) == {"bookings_tool", "front_short"}
    assert shown(client, calls, tool=lookup_order.public_id) == set()


def test_filter_by_billed_amount(tenant_a: TenantWorld, calls: dict[str, CallSession]) -> None:
    client = tenant_a.client_for(Role.AUDITOR)

    assert shown(client, calls, min_cost="0.40") == {"front_long", "bookings_tool"}
    assert shown(client, calls, max_cost="0.4") == {"front_short", "bookings_tool"}
    assert shown(client, calls, min_cost="0.1", max_cost="1") == {"bookings_tool"}


def test_filter_by_status(tenant_a: TenantWorld, calls: dict[str, CallSession]) -> None:
    client = tenant_a.client_for(Role.AUDITOR)

    assert shown(client, calls, status=CallStatus.ACTIVE) == {"bookings_live"}
    assert shown(client, calls, status=CallStatus.ENDED) == ALL - {"bookings_live"}


def test_filter_by_legal_hold(tenant_a: TenantWorld, calls: dict[str, CallSession]) -> None:
    client = tenant_a.client_for(Role.AUDITOR)

    assert shown(client, calls, legal_hold="on") == {"front_long"}
    assert shown(client, calls, legal_hold="off") == ALL - {"front_long"}


def test_filters_combine(tenant_a: TenantWorld, calls: dict[str, CallSession]) -> None:
    client = tenant_a.client_for(Role.AUDITOR)
    front = agent_id(calls, "front_short")

    assert shown(client, calls, agent=front, min_duration="60", legal_hold="on") == {"front_long"}
    assert shown(client, calls, agent=front, consent=ConsentScope.RECORDING) == set()


def test_no_match_is_told_apart_from_no_calls(
    tenant_a: TenantWorld, calls: dict[str, CallSession]
) -> None:
    text = page_text(tenant_a.client_for(Role.AUDITOR), end_reason=EndReason.BUDGET)

    assert "No calls match these filters" in text
    assert "Clear filters" in text


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"min_duration": "soon"}, "min_duration", "Enter a whole number."),
        ({"min_duration": "-5"}, "min_duration", "greater than or equal to 0"),
        ({"max_duration": "99999999999999999999"}, "max_duration", "less than or equal to"),
        ({"date_from": "2026-02-30"}, "date_from", "Enter a valid date."),
        ({"date_to": "9999-12-31"}, "date_to", "less than or equal to"),
        ({"min_cost": "lots"}, "min_cost", "Enter a number."),
        ({"max_cost": "0.0000001"}, "max_cost", "no more than 6 decimal places"),
        ({"end_reason": "<script>"}, "end_reason", "Select a valid choice."),
        ({"consent": "everything"}, "consent", "Select a valid choice."),
        ({"status": "paused"}, "status", "Select a valid choice."),
        ({"legal_hold": "maybe"}, "legal_hold", "Select a valid choice."),
        ({"agent": "agt_x' OR 1=1"}, "agent", "not an id"),
        ({"tool": "x" * 200}, "tool", "not an id"),
        ({"q": "x" * 201}, "q", "at most 200 characters"),
        ({"q": "refund\x00"}, "q", "Null characters are not allowed."),
        ({"min_duration": "300", "max_duration": "10"}, "max_duration", "shorter than"),
        ({"date_from": "2026-05-02", "date_to": "2026-05-01"}, "date_to", "before the first"),
        ({"min_cost": "0.5", "max_cost": "0.1"}, "max_cost", "below the lower one"),
    ],
)
def test_bad_filter_values_are_field_errors_and_the_rest_still_applies(
    tenant_a: TenantWorld,
    calls: dict[str, CallSession],
    params: dict[str, str],
    field: str,
    message: str,
) -> None:
    # A valid filter beside the bad one, which only front_long passes.
    valid = {"consent": "transcript"} if field != "consent" else {"legal_hold": "on"}
    client = tenant_a.client_for(Role.AUDITOR)
    response = client.get(reverse("dashboard:call_list"), {**params, **valid})

    assert response.status_code == 200
    form = response.context["form"]
    assert field in form.errors
    assert message in " ".join(form.errors[field])
    assert "Some filters could not be used" in response.content.decode()
    assert shown(client, calls, **params, **valid) == {"front_long"}


def test_export_contract_a_plain_dict_of_strings(
    tenant_a: TenantWorld, calls: dict[str, CallSession]
) -> None:
    tenant = tenant_a.tenant
    params = {"agent": agent_id(calls, "front_long"), "min_duration": "60", "q": ""}

    form = CallFilterForm(params, tenant=tenant)
    selected: QuerySet[CallSession] = form.filter(for_tenant(CallSession, tenant))

    assert form.is_valid()
    assert list(selected) == [calls["front_long"]]
    assert not CallFilterForm({"min_duration": "x"}, tenant=tenant).is_valid()
    unbound = CallFilterForm(tenant=tenant)
    assert unbound.filter(for_tenant(CallSession, tenant)).count() == len(ALL)


# --- isolation -------------------------------------------------------------------------------


def test_another_tenants_agent_or_tool_shows_nothing_of_theirs(
    tenant_a: TenantWorld, tenant_b: TenantWorld, calls: dict[str, CallSession]
) -> None:
    their_agent = AgentFactory(tenant=tenant_b.tenant, name="Bistro")
    their_tool = ToolFactory(tenant=tenant_b.tenant, name="book_table")
    their_call = make_call(tenant_b.tenant, their_agent)
    used_tool(their_call, their_tool)
    everything = {**calls, "theirs": their_call}
    client = tenant_a.client_for(Role.OWNER)

    assert shown(client, everything, agent=their_agent.public_id) == set()
    assert shown(client, everything, tool=their_tool.public_id) == set()
    assert "theirs" not in shown(client, everything)
    # Their agents and tools are not offered either.
    text = page_text(client)
    assert their_agent.public_id not in text and their_tool.public_id not in text


def test_calls_of_a_deleted_agent_are_not_matched_by_an_unknown_agent_id(
    tenant_a: TenantWorld, calls: dict[str, CallSession]
) -> None:
    orphan = make_call(tenant_a.tenant, None)  # its agent was deleted

    assert shown(tenant_a.client_for(Role.AUDITOR), {"orphan": orphan}, agent="agt_gone") == set()


# --- paging ----------------------------------------------------------------------------------


def next_link(text: str) -> dict[str, list[str]]:
    start = text.index('rel="next"')
    href_start = text.rindex('href="', 0, start) + len('href="')
    href = text[href_start : text.index('"', href_start)]
    return parse_qs(urlsplit(href).query)


def test_pages_keep_the_filters(tenant_a: TenantWorld) -> None:
    tenant = tenant_a.tenant
    now = timezone.now()
    matching = {
        f"match_{number}": make_call(
            tenant, started_at=now - timedelta(minutes=number), end_reason=EndReason.BUDGET
        )
        for number in range(55)
    }
    others = {
        f"other_{number}": make_call(tenant, started_at=now - timedelta(minutes=number, seconds=30))
        for number in range(55)
    }
    everything = {**matching, **others}
    client = tenant_a.client_for(Role.AUDITOR)

    first_text = page_text(client, end_reason=EndReason.BUDGET)
    query = next_link(first_text)
    second = shown(client, everything, **{key: values[0] for key, values in query.items()})

    assert query == {"end_reason": [EndReason.BUDGET], "page": ["2"]}
    assert second == {f"match_{number}" for number in range(50, 55)}
    last_text = page_text(client, end_reason=EndReason.BUDGET, page="2")
    assert 'rel="next"' not in last_text and 'rel="prev"' in last_text


def test_pages_are_not_counted(tenant_a: TenantWorld) -> None:
    make_call(tenant_a.tenant)
    client = tenant_a.client_for(Role.AUDITOR)

    with CaptureQueriesContext(connection) as queries:
        client.get(reverse("dashboard:call_list"), {"consent": "none", "page": "1"})

    assert not [query for query in queries.captured_queries if "COUNT(" in query["sql"]]


def test_a_page_past_the_last_call_says_so(tenant_a: TenantWorld) -> None:
    make_call(tenant_a.tenant)

    text = page_text(tenant_a.client_for(Role.AUDITOR), page="7", consent="none")

    assert "This page is past the last call" in text
    assert 'href="?consent=none"' in text


def test_the_deepest_page_points_to_the_date_filters(
    tenant_a: TenantWorld, monkeypatch: Any
) -> None:
    monkeypatch.setattr(dashboard.pagination, "MAX_PAGE", 2)
    now = timezone.now()
    calls = {
        f"call_{number}": make_call(tenant_a.tenant, started_at=now - timedelta(minutes=number))
        for number in range(101)
    }
    client = tenant_a.client_for(Role.AUDITOR)

    second = page_text(client, page="2")

    assert 'rel="next"' not in second
    assert "choose days under “From” and “To” to see older calls" in second
    assert shown(client, calls, page="3") == {f"call_{number}" for number in range(50)}
