"""REST API v1 for a tenant's usage and cost (mounted at /v1: /v1/usage, /v1/usage.csv).

Money is a decimal string to the nano-dollar ("0.071200000"): a JSON number would be
read as a float by most clients.
"""

from __future__ import annotations

import datetime
import io
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema

from billing.reports import (
    MAX_PERIOD_DAYS,
    TOKEN_FIELDS,
    AgentUsage,
    DayUsage,
    Distribution,
    MonthToDate,
    PeriodError,
    TokenUsage,
    Totals,
    UsageReport,
    csv_filename,
    month_to_date,
    parse_day,
    plain_amount,
    usage_report,
    utc_today,
    write_daily_csv,
)
from foundation.api import OMITTED, InvalidRequest, error_responses, request_tenant

router = Router(tags=["usage"])

DEFAULT_DAYS = 30
# API names of the period's dates ("from" is a Python keyword, so the schemas alias them).
FIELD_NAMES = {"start": "from", "end": "to"}
MONEY = "US dollars as a decimal string, to the nano-dollar."


class UsageQuery(Schema):
    start: str = Field(
        OMITTED,
        alias="from",
        description="First UTC day, YYYY-MM-DD (default: 29 days before `to`).",
        json_schema_extra={"format": "date"},
    )
    end: str = Field(
        OMITTED,
        alias="to",
        description=f"Last UTC day, YYYY-MM-DD (default: today); at most {MAX_PERIOD_DAYS} "
        "days after `from`.",
        json_schema_extra={"format": "date"},
    )


class TokensOut(Schema):
    input_text_tokens: int
    input_audio_tokens: int
    input_image_tokens: int
    cached_tokens: int = Field(description="Part of the input tokens, served from the cache.")
    output_text_tokens: int
    output_audio_tokens: int
    total_tokens: int
    cached_share: str | None = Field(
        description="Percent of the input tokens that were cached (null: no input)."
    )


class TotalsOut(Schema):
    calls: int
    duration_ms: int
    carrier_minutes: int = Field(
        description="Phone calls' minutes as the carriers bill them: each started minute whole."
    )
    carrier_cost: str = Field(
        description="What those minutes cost at the carriers' prices (part of `cost`): " + MONEY
    )
    cost: str = Field(description="Provider cost (model tokens and carrier minutes): " + MONEY)
    billed: str = Field(description="Billed amount: " + MONEY)
    tokens: TokensOut


class DayOut(TotalsOut):
    day: datetime.date


class AgentUsageOut(TotalsOut):
    agent_id: str | None = Field(description="null once the agent is deleted.")
    agent_name: str
    cost_share: str | None = Field(description="Percent of the period's cost.")


class DistributionOut(Schema):
    count: int
    average_ms: int | None
    p50_ms: int | None
    p95_ms: int | None


class MonthToDateOut(Schema):
    month_start: datetime.date
    today: datetime.date
    spent: str = Field(description="Billed this month so far: " + MONEY)
    cost: str = Field(description="Provider cost this month so far: " + MONEY)
    budget: str | None = Field(description="The monthly budget (null: none).")
    percent_used: str | None


class UsageOut(Schema):
    start: datetime.date = Field(alias="from")
    end: datetime.date = Field(alias="to")
    currency: str
    totals: TotalsOut
    days: list[DayOut] = Field(description="Every day of the period, days without calls too.")
    agents: list[AgentUsageOut] = Field(description="By provider cost, highest first.")
    call_durations: DistributionOut = Field(description="Of ended calls, in milliseconds.")
    turn_latencies: DistributionOut = Field(
        description="End of the caller's speech to the agent's first audio, per turn."
    )
    calls_measured: int = Field(description="Calls whose durations and latencies were read.")
    is_sampled: bool = Field(
        description="True when the period had more calls than were read (the latest 5000)."
    )
    month_to_date: MonthToDateOut


def _percent(value: Any) -> str | None:
    return None if value is None else f"{value:f}"


def tokens_json(tokens: TokenUsage) -> dict[str, Any]:
    return {
        **{name: getattr(tokens, name) for name in TOKEN_FIELDS},
        "total_tokens": tokens.total_tokens,
        "cached_share": _percent(tokens.cached_share),
    }


def totals_json(totals: Totals) -> dict[str, Any]:
    return {
        "calls": totals.calls,
        "duration_ms": totals.duration_ms,
        "carrier_minutes": totals.carrier_minutes,
        "carrier_cost": plain_amount(totals.carrier_cost),
        "cost": plain_amount(totals.cost),
        "billed": plain_amount(totals.billed),
        "tokens": tokens_json(totals.tokens),
    }


def day_json(day: DayUsage) -> dict[str, Any]:
    return {"day": day.day, **totals_json(day)}


def agent_json(agent: AgentUsage) -> dict[str, Any]:
    return {
        "agent_id": agent.agent_id,
        "agent_name": agent.agent_name,
        "cost_share": _percent(agent.cost_share),
        **totals_json(agent),
    }


def distribution_json(distribution: Distribution) -> dict[str, Any]:
    return {
        "count": distribution.count,
        "average_ms": distribution.average_ms,
        "p50_ms": distribution.p50_ms,
        "p95_ms": distribution.p95_ms,
    }


def month_json(month: MonthToDate) -> dict[str, Any]:
    return {
        "month_start": month.month_start,
        "today": month.today,
        "spent": plain_amount(month.spent),
        "cost": plain_amount(month.cost),
        "budget": None if month.budget is None else f"{month.budget:f}",
        "percent_used": _percent(month.percent_used),
    }


def usage_json(report: UsageReport, month: MonthToDate) -> dict[str, Any]:
    return {
        "from": report.start,
        "to": report.end,
        "currency": "USD",
        "totals": totals_json(report.totals),
        "days": [day_json(day) for day in report.days],
        "agents": [agent_json(agent) for agent in report.agents],
        "call_durations": distribution_json(report.call_durations),
        "turn_latencies": distribution_json(report.turn_latencies),
        "calls_measured": report.calls_measured,
        "is_sampled": report.is_sampled,
        "month_to_date": month_json(month),
    }


def requested_report(request: HttpRequest, query: UsageQuery) -> UsageReport:
    """The report of the period the query names; a bad period is an InvalidRequest."""
    try:
        end = parse_day(query.end, "end") if query.end else utc_today()
        start = (
            parse_day(query.start, "start")
            if query.start
            else end - datetime.timedelta(days=DEFAULT_DAYS - 1)
        )
        return usage_report(request_tenant(request), start, end)
    except PeriodError as error:
        raise InvalidRequest({FIELD_NAMES.get(error.field, error.field): [error.message]}) from None


@router.get(
    "/usage",
    response={200: UsageOut, **error_responses(400)},
    by_alias=True,
    summary="Usage and cost for a period: per day, per agent, by token kind, carrier minutes",
)
def get_usage(request: HttpRequest, query: Query[UsageQuery]) -> dict[str, Any]:
    report = requested_report(request, query)
    return usage_json(report, month_to_date(request_tenant(request), utc_today()))


@router.get(
    "/usage.csv",
    response=error_responses(400),
    summary="The period's days as CSV: calls, call time, tokens, cost, billed, carrier minutes",
    openapi_extra={
        "responses": {
            "200": {
                "description": "One row per UTC day; money as plain decimals (US dollars).",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        }
    },
)
def get_usage_csv(request: HttpRequest, query: Query[UsageQuery]) -> HttpResponse:
    report = requested_report(request, query)
    out = io.StringIO()
    write_daily_csv(report, out)
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{csv_filename(report)}"'
    return response
