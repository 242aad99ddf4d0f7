"""A call's page shows its cost by token kind, the provider cost and the billed amount."""

from __future__ import annotations

import html
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from billing.models import BillingSettings
from billing.settlement import settle_call
from calls.models import CallSession, UsageRecord
from tenancy.roles import Role
from tests.billing.test_pricing import MIXED
from tests.conftest import TenantWorld
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db


def openai_call(world: TenantWorld, model: str = "gpt-realtime", **fields: Any) -> CallSession:
    agent = AgentFactory(tenant=world.tenant, provider="openai", model=model, voice="marin")
    values: dict[str, Any] = {
        "tenant": world.tenant,
        "agent": agent,
        "agent_version": agent.current_version,
        "agent_name": agent.name,
        "version_number": 1,
        "channel": "api",
        "provider": "openai",
        "model": model,
        "status": "ended",
        "duration_ms": 90_000,
    }
    values.update(fields)
    call = CallSession.objects.create(**values)
    for response_id in ("resp_1", "resp_2"):
        UsageRecord.objects.create(
            call=call,
            tenant=world.tenant,
            response_id=response_id,
            provider="openai",
            model=model,
            **UsageRecord.fields_from_usage(MIXED),
        )
    return call


def detail(world: TenantWorld, call: CallSession, role: str = Role.OWNER) -> Any:
    return world.client_for(role).get(reverse("dashboard:call_detail", args=[call.public_id]))


def text_of(response: Any) -> str:
    return html.unescape(response.content.decode())


@pytest.mark.parametrize("role", Role.values)
def test_a_settled_calls_breakdown_by_token_kind_sums_to_its_cost(
    tenant_a: TenantWorld, role: str
) -> None:
    BillingSettings.objects.create(
        tenant=tenant_a.tenant, margin_percent=Decimal(20), fee_per_minute=Decimal("0.01")
    )
    call = settle_call(openai_call(tenant_a).pk)

    response = detail(tenant_a, call, role)

    assert response.status_code == 200
    rows = dict(response.context["cost_rows"])
    assert sum(rows.values(), Decimal(0)) == call.cost == Decimal("0.406760000")
    assert response.context["cost_breakdown"].total == call.cost
    # Two responses of MIXED at gpt-realtime's published prices (see test_pricing).
    assert rows["Audio output"] == Decimal("0.256000000")
    assert rows["Cached audio input"] == Decimal("0.002400000")
    assert "Image input" in rows and "Cached image input" not in rows  # none were cached
    text = text_of(response)
    assert "Audio output</th><td>$0.256000</td>" in text
    assert "Provider cost</th><td>$0.406760</td>" in text
    assert "Billed</th><td>$0.503112</td>" in text  # 20 % margin and 1.5 min at $0.01


def test_an_ended_call_not_yet_settled_says_so(tenant_a: TenantWorld) -> None:
    call = openai_call(tenant_a)

    text = text_of(detail(tenant_a, call))

    assert "Settling…" in text
    assert "Provider cost</th>" not in text


def test_a_live_call_has_no_cost_yet(tenant_a: TenantWorld) -> None:
    call = openai_call(tenant_a, status="active", duration_ms=None)

    assert "The cost is worked out when the call ends." in text_of(detail(tenant_a, call))


def test_a_model_without_a_price_is_not_priced(tenant_a: TenantWorld) -> None:
    call = settle_call(openai_call(tenant_a, model="gpt-future-realtime").pk)

    text = text_of(detail(tenant_a, call))

    assert "Not priced" in text
    assert "gpt-future-realtime" in text


def test_a_call_without_usage_costs_nothing(tenant_a: TenantWorld) -> None:
    call = openai_call(tenant_a)
    call.usage.all().delete()
    call = settle_call(call.pk)

    response = detail(tenant_a, call)

    assert response.context["cost_rows"] == []
    assert "no token was used" in text_of(response)
