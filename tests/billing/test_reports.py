"""Usage reports from hand-made DailyUsage and CallSession rows: the figures, to the nano-dollar."""

from __future__ import annotations

import datetime
import io
from decimal import Decimal
from typing import Any

import pytest

from agents.models import Agent
from billing import reports
from billing.charts import Point, bar_chart, nice_step
from billing.models import BillingSettings, DailyUsage
from billing.reports import (
    Distribution,
    PeriodError,
    check_period,
    month_to_date,
    parse_day,
    preset_period,
    usage_report,
    write_daily_csv,
)
from calls.models import CallSession
from tenancy.models import Tenant
from tests.conftest import TenantWorld
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
START, END = datetime.date(2026, 3, 1), datetime.date(2026, 3, 5)


def day(number: int, month: int = 3) -> datetime.date:
    return datetime.date(2026, month, number)


def usage_row(tenant: Tenant, agent: Agent | None, on: datetime.date, **fields: Any) -> DailyUsage:
    values: dict[str, Any] = {
        "tenant": tenant,
        "agent": agent,
        "agent_name": agent.name if agent else "Old bot",
        "day": on,
    }
    values.update(fields)
    return DailyUsage.objects.create(**values)


def call_at(tenant: Tenant, started_at: datetime.datetime, **fields: Any) -> CallSession:
    values: dict[str, Any] = {
        "tenant": tenant,
        "agent_name": "Reception",
        "version_number": 1,
        "channel": "api",
        "provider": "local",
        "model": "koe-local",
        "status": "ended",
        "started_at": started_at,
    }
    values.update(fields)
    return CallSession.objects.create(**values)


def seed_usage(world: TenantWorld, other: TenantWorld | None = None) -> tuple[Agent, Agent]:
    """Two agents over 1-5 March 2026 (nothing on the 2nd and 4th), rows either side of
    the period, and, when given, a much bigger bill of another tenant on the same days."""
    reception = AgentFactory(tenant=world.tenant, name="Reception")
    sales = AgentFactory(tenant=world.tenant, name="Sales")
    usage_row(
        world.tenant,
        reception,
        day(1),
        calls=2,
        duration_ms=120_000,
        input_text_tokens=1_000,
        input_audio_tokens=5_000,
        input_image_tokens=100,
        cached_tokens=3_000,
        output_text_tokens=400,
        output_audio_tokens=2_000,
        cost=Decimal("0.100000000"),
        billed=Decimal("0.120000000"),
    )
    usage_row(
        world.tenant,
        sales,
        day(1),
        calls=1,
        duration_ms=60_000,
        input_text_tokens=500,
        input_audio_tokens=1_000,
        output_text_tokens=100,
        output_audio_tokens=500,
        cost=Decimal("0.050000000"),
        billed=Decimal("0.060000000"),
    )
    usage_row(
        world.tenant,
        reception,
        day(3),
        calls=3,
        duration_ms=200_000,
        input_audio_tokens=400,
        cached_tokens=0,
        output_audio_tokens=600,
        cost=Decimal("0.000000001"),
        billed=Decimal("0.000000002"),
    )
    usage_row(
        world.tenant,
        sales,
        day(5),
        calls=1,
        duration_ms=30_000,
        input_text_tokens=100,
        output_text_tokens=50,
        cost=Decimal("0.300000000"),
        billed=Decimal("0.360000000"),
    )
    # Outside the period: the day before and the day after.
    usage_row(world.tenant, reception, day(28, 2), calls=9, cost=Decimal(9), billed=Decimal(9))
    usage_row(world.tenant, reception, day(6), calls=9, cost=Decimal(9), billed=Decimal(9))
    if other is not None:
        their_agent = AgentFactory(tenant=other.tenant, name="Their agent")
        for number in (1, 2, 3):
            usage_row(
                other.tenant,
                their_agent,
                day(number),
                calls=50,
                duration_ms=9_000_000,
                input_audio_tokens=99_999,
                cost=Decimal(50),
                billed=Decimal(70),
            )
            call_at(
                other.tenant,
                datetime.datetime(2026, 3, number, 12, tzinfo=UTC),
                duration_ms=9_999_000,
                latencies_ms=[9_999],
            )
    return reception, sales


def test_every_day_of_the_period_is_listed_with_zeros_for_days_without_calls(
    tenant_a: TenantWorld,
) -> None:
    seed_usage(tenant_a)

    report = usage_report(tenant_a.tenant, START, END)

    assert [row.day for row in report.days] == [day(n) for n in range(1, 6)]
    assert [row.calls for row in report.days] == [3, 0, 3, 0, 1]
    assert [row.cost for row in report.days] == [
        Decimal("0.150000000"),
        Decimal(0),
        Decimal("0.000000001"),
        Decimal(0),
        Decimal("0.300000000"),
    ]
    assert report.days[0].billed == Decimal("0.180000000")
    assert report.days[0].duration_ms == 180_000
    assert report.days[1].tokens.total_tokens == 0


def test_totals_are_exact_decimals_of_the_periods_rows_only(tenant_a: TenantWorld) -> None:
    seed_usage(tenant_a)

    totals = usage_report(tenant_a.tenant, START, END).totals

    assert totals.calls == 7
    assert totals.duration_ms == 410_000
    assert totals.cost == Decimal("0.450000001")
    assert totals.billed == Decimal("0.540000002")
    assert isinstance(totals.cost, Decimal)


def test_cost_by_agent_highest_first_with_each_agents_share(tenant_a: TenantWorld) -> None:
    reception, sales = seed_usage(tenant_a)

    agents = usage_report(tenant_a.tenant, START, END).agents

    assert [(a.agent_id, a.agent_name) for a in agents] == [
        (sales.public_id, "Sales"),
        (reception.public_id, "Reception"),
    ]
    assert (agents[0].calls, agents[0].cost, agents[0].billed) == (
        2,
        Decimal("0.350000000"),
        Decimal("0.420000000"),
    )
    assert (agents[1].calls, agents[1].cost, agents[1].duration_ms) == (
        5,
        Decimal("0.100000001"),
        320_000,
    )
    assert [agent.cost_share for agent in agents] == [Decimal("77.8"), Decimal("22.2")]


def test_a_deleted_agents_rows_stay_under_its_name(tenant_a: TenantWorld) -> None:
    usage_row(tenant_a.tenant, None, day(1), calls=1, cost=Decimal("0.25"))
    usage_row(tenant_a.tenant, None, day(2), calls=2, cost=Decimal("0.75"))

    (agent,) = usage_report(tenant_a.tenant, START, END).agents

    assert (agent.agent_id, agent.agent_name, agent.calls) == (None, "Old bot", 3)
    assert agent.cost == Decimal("1.000000000")
    assert agent.cost_share == Decimal("100.0")


def test_tokens_by_kind_with_the_cached_and_audio_shares(tenant_a: TenantWorld) -> None:
    seed_usage(tenant_a)

    tokens = usage_report(tenant_a.tenant, START, END).tokens

    assert tokens.input_text_tokens == 1_600
    assert tokens.input_audio_tokens == 6_400
    assert tokens.input_image_tokens == 100
    assert tokens.cached_tokens == 3_000
    assert tokens.output_text_tokens == 550
    assert tokens.output_audio_tokens == 3_100
    assert tokens.input_tokens == 8_100  # cached tokens are part of it, not added
    assert tokens.total_tokens == 11_750
    assert tokens.cached_share == Decimal("37.0")  # 3000 / 8100
    assert tokens.audio_share == Decimal("80.9")  # 9500 / 11750
    assert dict(tokens.by_kind())["Audio output"] == 3_100


def test_an_empty_period_has_zeros_and_no_shares(tenant_a: TenantWorld) -> None:
    report = usage_report(tenant_a.tenant, START, END)

    assert len(report.days) == 5
    assert report.totals.cost == Decimal(0)
    assert report.agents == []
    assert report.tokens.cached_share is None
    assert report.call_durations == Distribution()
    assert report.turn_latencies.p95_ms is None


def test_call_durations_average_and_nearest_rank_p95(tenant_a: TenantWorld) -> None:
    for number in range(1, 21):  # 1 s to 20 s, spread over the period
        call_at(
            tenant_a.tenant,
            datetime.datetime(2026, 3, 1 + number % 5, 10, number, tzinfo=UTC),
            duration_ms=number * 1_000,
        )
    call_at(tenant_a.tenant, datetime.datetime(2026, 3, 2, tzinfo=UTC), status="active")

    durations = usage_report(tenant_a.tenant, START, END).call_durations

    assert durations.count == 20  # the live call has no duration yet
    assert durations.average_ms == 10_500
    assert durations.p95_ms == 19_000  # rank ceil(0.95 * 20) = 19
    assert durations.p50_ms == 10_000


def test_turn_latencies_p50_and_p95_over_every_turn_of_the_periods_calls(
    tenant_a: TenantWorld,
) -> None:
    in_period = datetime.datetime(2026, 3, 3, 9, tzinfo=UTC)
    call_at(tenant_a.tenant, in_period, latencies_ms=[100, 300])
    call_at(tenant_a.tenant, in_period, latencies_ms=[200])
    call_at(tenant_a.tenant, in_period, latencies_ms=[])
    # What is not a latency is skipped.
    call_at(tenant_a.tenant, in_period, latencies_ms=[400, 500.0, "600", None, -1, True])
    # The period's edges are UTC midnights.
    call_at(
        tenant_a.tenant, datetime.datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC), latencies_ms=[1]
    )
    call_at(tenant_a.tenant, datetime.datetime(2026, 3, 6, tzinfo=UTC), latencies_ms=[9_000])

    latencies = usage_report(tenant_a.tenant, START, END).turn_latencies

    assert latencies.count == 5
    assert latencies.p50_ms == 300
    assert latencies.p95_ms == 500
    assert latencies.average_ms == 300


def test_percentiles_read_only_the_latest_calls(
    tenant_a: TenantWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reports, "CALL_SAMPLE_LIMIT", 3)
    for hour in range(5):
        call_at(
            tenant_a.tenant,
            datetime.datetime(2026, 3, 2, hour, tzinfo=UTC),
            duration_ms=(hour + 1) * 1_000,
        )

    report = usage_report(tenant_a.tenant, START, END)

    assert report.is_sampled
    assert report.calls_measured == 3
    assert report.call_durations.count == 3
    assert report.call_durations.average_ms == 4_000  # the latest: 3, 4 and 5 s


def test_another_tenants_rows_and_calls_are_never_counted(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    seed_usage(tenant_a, other=tenant_b)

    report = usage_report(tenant_a.tenant, START, END)

    assert report.totals.cost == Decimal("0.450000001")
    assert report.totals.calls == 7
    assert "Their agent" not in {agent.agent_name for agent in report.agents}
    assert report.call_durations.count == 0
    assert report.turn_latencies.count == 0
    assert usage_report(tenant_b.tenant, START, END).totals.cost == Decimal(150)


def test_month_to_date_sums_this_months_billed_amounts_against_the_budget(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    seed_usage(tenant_a, other=tenant_b)
    BillingSettings.objects.create(tenant=tenant_a.tenant, monthly_budget=Decimal("2.00"))

    month = month_to_date(tenant_a.tenant, day(5))

    assert (month.month_start, month.today) == (day(1), day(5))
    assert month.spent == Decimal("0.540000002")  # not February's, nor the 6th's
    assert month.cost == Decimal("0.450000001")
    assert month.budget == Decimal("2.00")
    assert month.percent_used == Decimal("27.0")
    assert month.bar_percent == 27
    assert month.remaining == Decimal("1.459999998")
    assert not month.is_over_budget


def test_month_to_date_over_the_budget_and_without_one(tenant_a: TenantWorld) -> None:
    usage_row(tenant_a.tenant, None, day(2), billed=Decimal("3.00"))

    assert month_to_date(tenant_a.tenant, day(5)).percent_used is None  # no settings at all

    billing = BillingSettings.objects.create(tenant=tenant_a.tenant, monthly_budget=Decimal("2.00"))
    over = month_to_date(tenant_a.tenant, day(5))
    assert over.percent_used == Decimal("150.0")
    assert over.bar_percent == 100
    assert over.remaining == Decimal(0)
    assert over.is_over_budget

    billing.monthly_budget = None
    billing.save()
    unbudgeted = month_to_date(tenant_a.tenant, day(5))
    assert unbudgeted.spent == Decimal("3.000000000")
    assert (unbudgeted.percent_used, unbudgeted.is_over_budget) == (None, False)


def test_periods_end_on_or_after_their_start_and_last_at_most_366_days() -> None:
    check_period(day(1), day(1))
    check_period(datetime.date(2024, 1, 1), datetime.date(2024, 12, 31))  # 366 days, leap year

    with pytest.raises(PeriodError) as backwards:
        check_period(day(5), day(4))
    assert backwards.value.field == "end"
    with pytest.raises(PeriodError, match="at most 366 days"):
        check_period(datetime.date(2025, 1, 1), datetime.date(2026, 1, 2))
    with pytest.raises(PeriodError, match="from 2000-01-01"):
        check_period(datetime.date.max - datetime.timedelta(days=1), datetime.date.max)


@pytest.mark.parametrize("text", ["2026-02-30", "20260301", "2026-3-1", "yesterday", ""])
def test_only_real_iso_dates_are_accepted(text: str) -> None:
    with pytest.raises(PeriodError) as error:
        parse_day(text, "start")
    assert error.value.field == "start"


def test_named_periods_end_today() -> None:
    today = day(15)
    assert preset_period("7", today) == (day(9), today)
    assert preset_period("30", today) == (day(14, 2), today)
    assert preset_period("90", today) == (datetime.date(2025, 12, 16), today)
    assert preset_period("month", today) == (day(1), today)
    with pytest.raises(PeriodError):
        preset_period("365", today)


def test_csv_has_one_row_per_day_with_plain_decimal_money(tenant_a: TenantWorld) -> None:
    seed_usage(tenant_a)
    out = io.StringIO()

    write_daily_csv(usage_report(tenant_a.tenant, START, END), out)

    lines = out.getvalue().splitlines()
    assert lines[0] == (
        "day,calls,duration_ms,input_text_tokens,input_audio_tokens,input_image_tokens,"
        "cached_tokens,output_text_tokens,output_audio_tokens,cost_usd,billed_usd,"
        "carrier_minutes,carrier_cost_usd"
    )
    assert lines[1] == (
        "2026-03-01,3,180000,1500,6000,100,3000,500,2500,0.150000000,0.180000000,0,0.000000000"
    )
    assert lines[2] == "2026-03-02,0,0,0,0,0,0,0,0,0.000000000,0.000000000,0,0.000000000"
    assert lines[3].endswith(",0.000000001,0.000000002,0,0.000000000")
    assert len(lines) == 6


def test_the_chart_has_one_bar_per_value_on_a_rounded_scale() -> None:
    points = [
        Point(label="1 Mar", value=Decimal("0.15"), title="a"),
        Point(label="2 Mar", value=Decimal(0), title="b"),
        Point(label="3 Mar", value=Decimal("0.000000001"), title="c"),
    ]

    chart = bar_chart(points)

    assert [bar.title for bar in chart.bars] == ["a", "b", "c"]
    assert chart.bars[1].height == 0
    assert chart.bars[2].height >= 1  # tiny, but visible
    assert chart.bars[0].y >= chart.plot_top
    assert [tick.label for tick in chart.ticks] == ["0", "0.05", "0.1", "0.15"]
    assert nice_step(Decimal(7)) == Decimal(2)
    assert nice_step(Decimal(0)) == Decimal(1)
    assert [tick.label for tick in bar_chart(points[1:2]).ticks] == ["0", "1"]
