"""What a tenant spent and used over a period: the figures of the usage page, its CSV and the API.

Money, tokens and carrier minutes come from the DailyUsage roll-ups (one row per agent and
UTC day); call durations and per-turn latencies, which need every value for a percentile,
from the period's latest calls. Money stays Decimal from the database to the CSV.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, TextIO

from billing.models import BillingSettings, DailyUsage
from billing.pricing import QUANTUM
from calls.models import CallSession
from tenancy.models import Tenant

UTC = datetime.UTC
ZERO = Decimal(0)
ONE_DAY = datetime.timedelta(days=1)
MAX_PERIOD_DAYS = 366
# Percentiles need every value: they are taken over the period's latest calls only.
CALL_SAMPLE_LIMIT = 5_000
PERCENT_PLACES = Decimal("0.1")

EARLIEST_DAY, LATEST_DAY = datetime.date(2000, 1, 1), datetime.date(9998, 12, 31)
DAY_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")

PRESETS = {"7": "Last 7 days", "30": "Last 30 days", "90": "Last 90 days", "month": "This month"}


class PeriodError(ValueError):
    """A period the reports refuse; ``field`` names what to change: "start", "end" or
    "period" (an unknown preset)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(message)


def utc_today() -> datetime.date:
    """Today's date in UTC, the calendar of the daily roll-ups and of budgets."""
    return datetime.datetime.now(UTC).date()


def parse_day(text: str, field: str) -> datetime.date:
    """A YYYY-MM-DD date, or a PeriodError on ``field``."""
    text = text.strip()
    if not DAY_PATTERN.fullmatch(text):
        raise PeriodError(field, "Enter a date as YYYY-MM-DD.")
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        raise PeriodError(field, f"{text} is not a date in the calendar.") from None
    _check_range(day, field)
    return day


def _check_range(day: datetime.date, field: str) -> None:
    # Far dates would overflow the date arithmetic of defaults and UTC day boundaries.
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise PeriodError(field, f"Choose a date from {EARLIEST_DAY} to {LATEST_DAY}.")


def check_period(start: datetime.date, end: datetime.date) -> None:
    """Refuse a period that ends before it starts or spans more than 366 days."""
    if end < start:
        raise PeriodError("end", "The end date must be on or after the start date.")
    _check_range(start, "start")
    _check_range(end, "end")
    days = (end - start).days + 1
    if days > MAX_PERIOD_DAYS:
        raise PeriodError(
            "end", f"A period is at most {MAX_PERIOD_DAYS} days long; this one has {days}."
        )


def preset_period(preset: str, today: datetime.date) -> tuple[datetime.date, datetime.date]:
    """The dates of a named period ending today: the last 7, 30 or 90 days, or this month."""
    if preset == "month":
        return today.replace(day=1), today
    if preset in PRESETS:
        return today - datetime.timedelta(days=int(preset) - 1), today
    raise PeriodError("period", f"Unknown period {preset!r}.")


@dataclass(frozen=True)
class TokenUsage:
    """Tokens by kind; cached tokens are a part of the input tokens, not added to them."""

    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    input_image_tokens: int = 0
    cached_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0

    @property
    def input_tokens(self) -> int:
        return self.input_text_tokens + self.input_audio_tokens + self.input_image_tokens

    @property
    def output_tokens(self) -> int:
        return self.output_text_tokens + self.output_audio_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def cached_share(self) -> Decimal | None:
        """The percentage of input tokens served from the provider's cache."""
        return percent(Decimal(self.cached_tokens), Decimal(self.input_tokens))

    @property
    def audio_share(self) -> Decimal | None:
        """The percentage of all tokens that are audio."""
        audio = self.input_audio_tokens + self.output_audio_tokens
        return percent(Decimal(audio), Decimal(self.total_tokens))

    def by_kind(self) -> list[tuple[str, int]]:
        """(label, tokens) in the order the usage page and the API list them."""
        return [
            ("Text input", self.input_text_tokens),
            ("Text output", self.output_text_tokens),
            ("Audio input", self.input_audio_tokens),
            ("Audio output", self.output_audio_tokens),
            ("Image input", self.input_image_tokens),
            ("Cached input (part of the input)", self.cached_tokens),
        ]


TOKEN_FIELDS = tuple(token_field.name for token_field in fields(TokenUsage))


@dataclass(frozen=True, kw_only=True)
class Totals:
    calls: int = 0
    duration_ms: int = 0
    # Phone calls' minutes as the carrier bills them and their cost (a part of ``cost``).
    carrier_minutes: int = 0
    carrier_cost: Decimal = ZERO
    cost: Decimal = ZERO
    billed: Decimal = ZERO
    tokens: TokenUsage = dataclasses.field(default_factory=TokenUsage)


@dataclass(frozen=True, kw_only=True)
class DayUsage(Totals):
    day: datetime.date


@dataclass(frozen=True, kw_only=True)
class AgentUsage(Totals):
    agent_id: str | None  # the agent's public id; None once the agent is deleted
    agent_name: str
    cost_share: Decimal | None = None  # percent of the period's cost


@dataclass(frozen=True)
class Distribution:
    """Count, mean and nearest-rank percentiles of millisecond values."""

    count: int = 0
    average_ms: int | None = None
    p50_ms: int | None = None
    p95_ms: int | None = None

    @classmethod
    def of(cls, values: Iterable[int]) -> Distribution:
        ordered = sorted(values)
        if not ordered:
            return cls()
        count = len(ordered)
        return cls(
            count=count,
            average_ms=(sum(ordered) + count // 2) // count,
            p50_ms=nearest_rank(ordered, 50),
            p95_ms=nearest_rank(ordered, 95),
        )


@dataclass(frozen=True)
class UsageReport:
    start: datetime.date
    end: datetime.date
    days: list[DayUsage]
    agents: list[AgentUsage]
    totals: Totals
    call_durations: Distribution
    turn_latencies: Distribution
    calls_measured: int  # the calls whose durations and latencies were read
    is_sampled: bool  # the period had more calls than were read

    @property
    def tokens(self) -> TokenUsage:
        return self.totals.tokens

    @property
    def has_carrier_minutes(self) -> bool:
        """Whether the period had phone calls' carrier minutes (the page shows them then)."""
        return self.totals.carrier_minutes > 0


@dataclass(frozen=True)
class MonthToDate:
    """This calendar month's (UTC) billed spending against the tenant's monthly budget."""

    month_start: datetime.date
    today: datetime.date
    spent: Decimal
    cost: Decimal
    budget: Decimal | None

    @property
    def percent_used(self) -> Decimal | None:
        if self.budget is None:
            return None
        if self.budget <= 0:
            return Decimal(100)
        return percent(self.spent, self.budget)

    @property
    def bar_percent(self) -> int:
        """The used share, 0 to 100, for a progress bar."""
        used = self.percent_used
        return 0 if used is None else max(0, min(100, int(used)))

    @property
    def remaining(self) -> Decimal | None:
        return None if self.budget is None else max(ZERO, self.budget - self.spent)

    @property
    def is_over_budget(self) -> bool:
        return self.budget is not None and self.spent >= self.budget > 0


def percent(part: Decimal, whole: Decimal) -> Decimal | None:
    if whole <= 0:
        return None
    return (part * 100 / whole).quantize(PERCENT_PLACES)


def nearest_rank(ordered: Sequence[int], percentile: int) -> int:
    """The nearest-rank percentile of sorted values (always one of the values)."""
    rank = max(1, math.ceil(percentile * len(ordered) / 100))
    return ordered[rank - 1]


def plain_amount(amount: Decimal) -> str:
    """Dollars as a plain decimal string to the nano-dollar: never "0E-9" or "1E+2"."""
    return f"{amount.quantize(QUANTUM):f}"


class _Tally:
    """Running sums of DailyUsage rows (mutable while a report is built)."""

    def __init__(self) -> None:
        self.calls = 0
        self.duration_ms = 0
        self.carrier_minutes = 0
        self.carrier_cost = ZERO
        self.cost = ZERO
        self.billed = ZERO
        self.tokens = dict.fromkeys(TOKEN_FIELDS, 0)

    def add(self, row: dict[str, Any]) -> None:
        self.calls += row["calls"]
        self.duration_ms += row["duration_ms"]
        self.carrier_minutes += row["carrier_minutes"]
        self.carrier_cost += row["carrier_cost"] or ZERO
        self.cost += row["cost"] or ZERO
        self.billed += row["billed"] or ZERO
        for name in TOKEN_FIELDS:
            self.tokens[name] += row[name]

    def values(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "duration_ms": self.duration_ms,
            "carrier_minutes": self.carrier_minutes,
            "carrier_cost": self.carrier_cost,
            "cost": self.cost,
            "billed": self.billed,
            "tokens": TokenUsage(**self.tokens),
        }


def usage_report(tenant: Tenant, start: datetime.date, end: datetime.date) -> UsageReport:
    """The tenant's usage from ``start`` to ``end`` (UTC days, both included)."""
    check_period(start, end)
    rows = (
        DailyUsage.objects.filter(tenant=tenant, day__gte=start, day__lte=end)
        .order_by("-day", "pk")
        .values(
            "day",
            "agent_id",
            "agent__public_id",
            "agent_name",
            "calls",
            "duration_ms",
            "carrier_minutes",
            "carrier_cost",
            "cost",
            "billed",
            *TOKEN_FIELDS,
        )
    )
    # Summed here rather than in SQL: SQLite sums decimals as floats, and the rows of a
    # period (days times agents) are few.
    total = _Tally()
    by_day: dict[datetime.date, _Tally] = {}
    by_agent: dict[tuple[int | None, str], _Tally] = {}
    agent_names: dict[tuple[int | None, str], tuple[str | None, str]] = {}
    for row in rows:
        total.add(row)
        by_day.setdefault(row["day"], _Tally()).add(row)
        # A deleted agent's rows keep its name; the newest row names a renamed agent.
        key = (row["agent_id"], "" if row["agent_id"] else row["agent_name"])
        by_agent.setdefault(key, _Tally()).add(row)
        agent_names.setdefault(key, (row["agent__public_id"], row["agent_name"]))

    days = []
    day = start
    while day <= end:
        tally = by_day.get(day)
        days.append(DayUsage(day=day, **(tally.values() if tally else {})))
        day += ONE_DAY

    agents = [
        AgentUsage(
            agent_id=agent_names[key][0],
            agent_name=agent_names[key][1],
            cost_share=percent(tally.cost, total.cost),
            **tally.values(),
        )
        for key, tally in by_agent.items()
    ]
    agents.sort(key=lambda agent: (-agent.cost, -agent.calls, agent.agent_name))

    durations, latencies, measured, is_sampled = _call_measures(tenant, start, end)
    return UsageReport(
        start=start,
        end=end,
        days=days,
        agents=agents,
        totals=Totals(**total.values()),
        call_durations=Distribution.of(durations),
        turn_latencies=Distribution.of(latencies),
        calls_measured=measured,
        is_sampled=is_sampled,
    )


def _call_measures(
    tenant: Tenant, start: datetime.date, end: datetime.date
) -> tuple[list[int], list[int], int, bool]:
    """Durations of ended calls and per-turn latencies of the period's latest calls."""
    start_at = datetime.datetime.combine(start, datetime.time(), tzinfo=UTC)
    end_at = datetime.datetime.combine(end + ONE_DAY, datetime.time(), tzinfo=UTC)
    calls = list(
        CallSession.objects.filter(tenant=tenant, started_at__gte=start_at, started_at__lt=end_at)
        .order_by("-started_at", "-pk")
        .values_list("duration_ms", "latencies_ms")[: CALL_SAMPLE_LIMIT + 1]
    )
    is_sampled = len(calls) > CALL_SAMPLE_LIMIT
    calls = calls[:CALL_SAMPLE_LIMIT]
    durations = [duration for duration, _ in calls if duration is not None]
    latencies = [value for _, turn_latencies in calls for value in _sane_latencies(turn_latencies)]
    return durations, latencies, len(calls), is_sampled


def _sane_latencies(values: Any) -> Iterable[int]:
    # The list is JSON written by the broker: skip anything that is not a sane number.
    if not isinstance(values, list):
        return
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value) and value >= 0:
            yield int(value)


def month_to_date(tenant: Tenant, today: datetime.date) -> MonthToDate:
    """Billed spending from the first of ``today``'s month to ``today`` against the budget."""
    month_start = today.replace(day=1)
    rows = DailyUsage.objects.filter(
        tenant=tenant, day__gte=month_start, day__lte=today
    ).values_list("cost", "billed")
    cost, billed = ZERO, ZERO
    for row_cost, row_billed in rows:
        cost += row_cost or ZERO
        billed += row_billed or ZERO
    budget = (
        BillingSettings.objects.filter(tenant=tenant)
        .values_list("monthly_budget", flat=True)
        .first()
    )
    return MonthToDate(month_start=month_start, today=today, spent=billed, cost=cost, budget=budget)


# The carrier columns come last, so readers of the earlier columns by position still work.
CSV_HEADER = (
    "day",
    "calls",
    "duration_ms",
    *TOKEN_FIELDS,
    "cost_usd",
    "billed_usd",
    "carrier_minutes",
    "carrier_cost_usd",
)


def write_daily_csv(report: UsageReport, out: TextIO) -> None:
    """One CSV row per day of the report (days without calls too), money as plain decimals."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for day in report.days:
        writer.writerow(
            (
                day.day.isoformat(),
                day.calls,
                day.duration_ms,
                *(getattr(day.tokens, name) for name in TOKEN_FIELDS),
                plain_amount(day.cost),
                plain_amount(day.billed),
                day.carrier_minutes,
                plain_amount(day.carrier_cost),
            )
        )


def csv_filename(report: UsageReport) -> str:
    return f"koe-usage-{report.start.isoformat()}-to-{report.end.isoformat()}.csv"
