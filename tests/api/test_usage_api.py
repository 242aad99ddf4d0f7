"""REST API for usage: the usage page's figures as JSON (money as strings) and as CSV."""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.test import Client

from billing.models import BillingSettings
from tests.api import api_client
from tests.billing.test_reports import END, START, call_at, seed_usage
from tests.conftest import TenantWorld

pytestmark = pytest.mark.django_db

PERIOD = {"from": START.isoformat(), "to": END.isoformat()}


@pytest.fixture(autouse=True)
def _today() -> Iterator[None]:
    with time_machine.travel(datetime.datetime(2026, 3, 5, 12, tzinfo=datetime.UTC), tick=False):
        yield


def get(world: TenantWorld, path: str = "/v1/usage", **query: str) -> Any:
    return api_client(world.secret).get(path, query)


def test_usage_returns_the_periods_figures_with_money_as_exact_strings(
    tenant_a: TenantWorld,
) -> None:
    reception, sales = seed_usage(tenant_a)
    BillingSettings.objects.create(tenant=tenant_a.tenant, monthly_budget=Decimal("2.00"))

    response = get(tenant_a, **PERIOD)

    assert response.status_code == 200
    body = response.json()
    assert (body["from"], body["to"], body["currency"]) == ("2026-03-01", "2026-03-05", "USD")
    totals = body["totals"]
    assert (totals["calls"], totals["duration_ms"]) == (7, 410_000)
    assert (totals["cost"], totals["billed"]) == ("0.450000001", "0.540000002")
    assert totals["tokens"]["cached_tokens"] == 3_000
    assert totals["tokens"]["total_tokens"] == 11_750
    assert totals["tokens"]["cached_share"] == "37.0"
    assert [day["day"] for day in body["days"]] == [f"2026-03-0{n}" for n in range(1, 6)]
    assert body["days"][1] == {
        "day": "2026-03-02",
        "calls": 0,
        "duration_ms": 0,
        "carrier_minutes": 0,
        "carrier_cost": "0.000000000",
        "cost": "0.000000000",
        "billed": "0.000000000",
        "tokens": {
            "input_text_tokens": 0,
            "input_audio_tokens": 0,
            "input_image_tokens": 0,
            "cached_tokens": 0,
            "output_text_tokens": 0,
            "output_audio_tokens": 0,
            "total_tokens": 0,
            "cached_share": None,
        },
    }
    assert [
        (a["agent_id"], a["agent_name"], a["cost"], a["cost_share"]) for a in body["agents"]
    ] == [
        (sales.public_id, "Sales", "0.350000000", "77.8"),
        (reception.public_id, "Reception", "0.100000001", "22.2"),
    ]
    assert body["month_to_date"] == {
        "month_start": "2026-03-01",
        "today": "2026-03-05",
        "spent": "0.540000002",
        "cost": "0.450000001",
        "budget": "2.00",
        "percent_used": "27.0",
    }
    assert body["is_sampled"] is False


def test_usage_reports_durations_and_latencies(tenant_a: TenantWorld) -> None:
    for number, latencies in enumerate([[100, 300], [200], [400, 500]], start=1):
        call_at(
            tenant_a.tenant,
            datetime.datetime(2026, 3, number, 9, tzinfo=datetime.UTC),
            duration_ms=number * 60_000,
            latencies_ms=latencies,
        )

    body = get(tenant_a, **PERIOD).json()

    assert body["call_durations"] == {
        "count": 3,
        "average_ms": 120_000,
        "p50_ms": 120_000,
        "p95_ms": 180_000,
    }
    assert body["turn_latencies"] == {
        "count": 5,
        "average_ms": 300,
        "p50_ms": 300,
        "p95_ms": 500,
    }
    assert body["calls_measured"] == 3


def test_without_dates_the_period_is_the_last_30_days(tenant_a: TenantWorld) -> None:
    body = get(tenant_a).json()

    assert (body["from"], body["to"]) == ("2026-02-04", "2026-03-05")
    assert len(body["days"]) == 30
    assert body["month_to_date"]["budget"] is None


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"from": "2026-02-30", "to": "2026-03-05"}, "from", "not a date in the calendar"),
        ({"from": "03/01/2026", "to": "2026-03-05"}, "from", "YYYY-MM-DD"),
        ({"from": "2026-03-01", "to": "tomorrow"}, "to", "YYYY-MM-DD"),
        ({"from": "2026-03-05", "to": "2026-03-01"}, "to", "on or after the start"),
        ({"from": "2025-01-01", "to": "2026-03-01"}, "to", "at most 366 days"),
        ({"to": "9999-12-31"}, "to", "from 2000-01-01 to 9998-12-31"),
        ({"to": "0001-01-10"}, "to", "from 2000-01-01 to 9998-12-31"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/usage", "/v1/usage.csv"])
def test_bad_periods_are_400_field_errors(
    tenant_a: TenantWorld, query: dict[str, str], field: str, message: str, path: str
) -> None:
    response = get(tenant_a, path, **query)

    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_fields")
    assert list(error["fields"]) == [field]
    assert message in error["fields"][field][0]


@pytest.mark.parametrize("path", ["/v1/usage", "/v1/usage.csv"])
def test_usage_needs_a_secret_key(tenant_a: TenantWorld, path: str) -> None:
    response = Client().get(path)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_each_key_sees_only_its_own_tenants_usage(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    seed_usage(tenant_a, other=tenant_b)

    mine = get(tenant_a, **PERIOD).json()
    theirs = get(tenant_b, **PERIOD).json()

    assert mine["totals"]["billed"] == "0.540000002"
    assert "Their agent" not in {agent["agent_name"] for agent in mine["agents"]}
    assert mine["call_durations"]["count"] == 0
    assert theirs["totals"]["billed"] == "210.000000000"
    assert [agent["agent_name"] for agent in theirs["agents"]] == ["Their agent"]
    assert theirs["month_to_date"]["spent"] == "210.000000000"


def test_usage_csv_has_a_row_per_day_and_a_file_name(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    seed_usage(tenant_a, other=tenant_b)

    response = get(tenant_a, "/v1/usage.csv", **PERIOD)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="koe-usage-2026-03-01-to-2026-03-05.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(row["day"], row["calls"], row["billed_usd"]) for row in rows] == [
        ("2026-03-01", "3", "0.180000000"),
        ("2026-03-02", "0", "0.000000000"),
        ("2026-03-03", "3", "0.000000002"),
        ("2026-03-04", "0", "0.000000000"),
        ("2026-03-05", "1", "0.360000000"),
    ]


def test_openapi_describes_the_usage_endpoints() -> None:
    schema = Client().get("/v1/openapi.json").json()

    usage = schema["paths"]["/v1/usage"]["get"]
    assert {parameter["name"] for parameter in usage["parameters"]} == {"from", "to"}
    assert usage["security"] == [{"SecretKeyAuth": []}]
    properties = schema["components"]["schemas"]["UsageOut"]["properties"]
    assert {"from", "to", "days", "agents", "month_to_date"} <= set(properties)
    assert schema["components"]["schemas"]["TotalsOut"]["properties"]["cost"]["type"] == "string"
    csv_operation = schema["paths"]["/v1/usage.csv"]["get"]
    assert "text/csv" in csv_operation["responses"]["200"]["content"]
