"""The usage page and its CSV export: every member sees their own tenant's figures only."""

from __future__ import annotations

import csv
import datetime
import html
import io
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.urls import reverse

from billing.models import BillingSettings
from tenancy.roles import Role
from tests.billing.test_reports import END, START, seed_usage
from tests.conftest import TenantWorld

pytestmark = pytest.mark.django_db

CUSTOM = {"period": "custom", "start": START.isoformat(), "end": END.isoformat()}


@pytest.fixture(autouse=True)
def _today() -> Iterator[None]:
    # 5 March 2026, noon UTC: the seeded period's last day.
    with time_machine.travel(datetime.datetime(2026, 3, 5, 12, tzinfo=datetime.UTC), tick=False):
        yield


def page(world: TenantWorld, role: str = Role.OWNER, **query: str) -> Any:
    return world.client_for(role).get(reverse("dashboard:usage"), query)


def export(world: TenantWorld, role: str = Role.OWNER, **query: str) -> Any:
    return world.client_for(role).get(reverse("dashboard:usage_export"), query)


def text_of(response: Any) -> str:
    return html.unescape(response.content.decode())


def bars(response: Any) -> list[str]:
    """The tooltips of the chart's bars, in order."""
    return re.findall(r'<g class="bar"><title>([^<]*)</title>', response.content.decode())


@pytest.mark.parametrize("role", Role.values)
def test_every_role_sees_the_usage_page_with_a_bar_per_day(
    tenant_a: TenantWorld, role: str
) -> None:
    seed_usage(tenant_a)

    response = page(tenant_a, role, **CUSTOM)

    assert response.status_code == 200
    text = text_of(response)
    assert "<svg" in text and 'role="img"' in text
    tooltips = bars(response)
    assert len(tooltips) == 5
    assert html.unescape(tooltips[0]) == "Sun 1 Mar 2026: $0.1500, 3 calls"
    assert html.unescape(tooltips[1]) == "Mon 2 Mar 2026: $0.0000, 0 calls"
    assert "Reception" in text and "Sales" in text
    assert "$0.5400" in text  # billed in the period
    assert 'href="/usage/"' in text and 'aria-current="page"' in text  # in the navigation


def test_named_periods_end_today_with_one_bar_per_day(tenant_a: TenantWorld) -> None:
    assert len(bars(page(tenant_a))) == 30  # the default: the last 30 days
    assert len(bars(page(tenant_a, period="7"))) == 7
    assert len(bars(page(tenant_a, period="90"))) == 90
    this_month = page(tenant_a, period="month")
    assert len(bars(this_month)) == 5
    assert this_month.context["report"].start == START


def test_the_chart_can_show_calls_instead_of_cost(tenant_a: TenantWorld) -> None:
    seed_usage(tenant_a)

    response = page(tenant_a, chart="calls", **CUSTOM)

    assert response.context["metric"] == "calls"
    assert "Calls per day" in text_of(response)
    assert [tick.label for tick in response.context["chart"].ticks] == ["0", "1", "2", "3"]


def test_the_day_table_is_an_accessible_fallback_of_the_chart(tenant_a: TenantWorld) -> None:
    seed_usage(tenant_a)

    text = text_of(page(tenant_a, **CUSTOM))

    assert 'aria-describedby="chart-desc"' in text
    assert "<summary>Every day as a table</summary>" in text
    assert '<time datetime="2026-03-02">' in text


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"start": "2026-02-30", "end": "2026-03-05"}, "start", "not a date in the calendar"),
        ({"start": "2026-03-01", "end": "5 March"}, "end", "YYYY-MM-DD"),
        ({"start": "", "end": "2026-03-05"}, "start", "Enter a date"),
        ({"start": "2026-03-05", "end": "2026-03-01"}, "end", "on or after the start"),
        ({"start": "2025-01-01", "end": "2026-03-01"}, "end", "at most 366 days"),
    ],
)
def test_bad_custom_dates_are_field_errors(
    tenant_a: TenantWorld, query: dict[str, str], field: str, message: str
) -> None:
    response = page(tenant_a, period="custom", **query)

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert message in " ".join(errors[field])
    assert message in text_of(response)
    assert 'aria-invalid="true"' in text_of(response)
    assert "report" not in response.context
    assert "<svg" not in text_of(response)


def test_dates_left_in_the_form_do_not_spoil_a_named_period(tenant_a: TenantWorld) -> None:
    response = page(tenant_a, period="7", start="nonsense", end="")

    assert response.context["form"].errors == {}
    assert len(bars(response)) == 7


def test_an_unknown_period_is_a_field_error(tenant_a: TenantWorld) -> None:
    response = page(tenant_a, period="forever")

    assert "period" in response.context["form"].errors


def test_the_month_is_shown_against_the_budget(tenant_a: TenantWorld) -> None:
    seed_usage(tenant_a)
    BillingSettings.objects.create(tenant=tenant_a.tenant, monthly_budget=Decimal("2.00"))

    text = text_of(page(tenant_a))

    assert re.search(r'<progress id="budget-progress"[^>]*max="100" value="27"', text)
    assert "$0.54 of the $2.00 monthly budget (27.0%)" in text


def test_without_a_budget_the_month_is_shown_alone(tenant_a: TenantWorld) -> None:
    seed_usage(tenant_a)

    text = text_of(page(tenant_a))

    assert "No monthly budget is set" in text
    assert "<progress" not in text


def test_another_tenants_usage_never_shows(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    seed_usage(tenant_a, other=tenant_b)

    response = page(tenant_a, **CUSTOM)

    report = response.context["report"]
    assert report.totals.billed == Decimal("0.540000002")
    text = text_of(response)
    assert "Their agent" not in text
    assert "$70" not in text
    assert response.context["month"].spent == Decimal("0.540000002")


def test_usage_needs_a_login(tenant_a: TenantWorld, client: Any) -> None:
    for name in ("dashboard:usage", "dashboard:usage_export"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert "/login/" in response["Location"]


@pytest.mark.parametrize("role", Role.values)
def test_every_role_exports_the_daily_rows_as_csv(tenant_a: TenantWorld, role: str) -> None:
    seed_usage(tenant_a)

    response = export(tenant_a, role, **CUSTOM)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="koe-usage-2026-03-01-to-2026-03-05.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["day"] for row in rows] == [f"2026-03-0{n}" for n in range(1, 6)]
    assert rows[0]["cost_usd"] == "0.150000000"
    assert rows[0]["billed_usd"] == "0.180000000"
    assert rows[1]["calls"] == "0"
    assert rows[2]["cost_usd"] == "0.000000001"


def test_the_page_links_the_export_of_the_period_it_shows(tenant_a: TenantWorld) -> None:
    response = page(tenant_a, period="7")

    expected = "/usage/export.csv?period=custom&amp;start=2026-02-27&amp;end=2026-03-05"
    assert expected in response.content.decode()


def test_the_export_counts_no_other_tenants_rows(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    seed_usage(tenant_a, other=tenant_b)

    content = export(tenant_a, **CUSTOM).content.decode()

    assert "70.000000000" not in content
    assert "2026-03-02,0,0,0,0,0,0,0,0,0.000000000,0.000000000" in content


def test_an_export_of_bad_dates_is_refused(tenant_a: TenantWorld) -> None:
    response = export(tenant_a, period="custom", start="2026-03-05", end="2026-03-01")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert "on or after the start" in response.content.decode()
