"""Daily usage roll-ups: each tenant's settled calls summed per agent and UTC day (calls,
time, tokens, carrier minutes and money).

A day's rows are recomputed from the call records and replace what was there, never
added to, so a retried or repeated roll-up (or two workers at once) gives the same totals.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import OperationalError, transaction
from django.db.models import Count, Max, Sum
from django.utils import timezone

from billing.models import DailyUsage
from billing.settlement import settle_call
from calls.models import CallSession, CallStatus, UsageRecord
from tenancy.models import Tenant

logger = logging.getLogger("koe.billing")

UTC = datetime.UTC
TOKEN_FIELDS = (
    "input_text_tokens",
    "input_audio_tokens",
    "input_image_tokens",
    "cached_tokens",
    "output_text_tokens",
    "output_audio_tokens",
)
# Days re-rolled by the daily reconciliation besides those of the calls it settles.
RECONCILED_DAYS = 2  # yesterday and today


def utc_day(moment: datetime.datetime) -> datetime.date:
    return moment.astimezone(UTC).date()


def day_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    start = datetime.datetime.combine(day, datetime.time.min, tzinfo=UTC)
    return start, start + datetime.timedelta(days=1)


@dataclass
class _AgentDay:
    agent_id: int | None
    agent_name: str
    latest_start: datetime.datetime | None = None
    totals: dict[str, Any] = field(
        default_factory=lambda: {
            "calls": 0,
            "duration_ms": 0,
            "carrier_minutes": 0,
            "carrier_cost": Decimal(0),
            "cost": Decimal(0),
            "billed": Decimal(0),
            **dict.fromkeys(TOKEN_FIELDS, 0),
        }
    )


def _group_key(agent_id: int | None, agent_name: str) -> tuple[int | None, str]:
    # A call keeps its agent's name as text: calls of a deleted agent (agent NULL) are
    # grouped by that name; calls of a live agent by the agent, whatever it was called then.
    return (agent_id, "") if agent_id is not None else (None, agent_name)


def roll_up_day(tenant_id: int, day: datetime.date) -> None:
    """Replace the tenant's DailyUsage rows of ``day`` (UTC) with the sums of its settled
    calls started that day, one row per agent."""
    with transaction.atomic():
        # The tenant row lock serialises roll-ups of one tenant across workers, so two
        # at once cannot both delete and then both insert.
        if not Tenant.objects.select_for_update().filter(pk=tenant_id).exists():
            return  # the tenant was deleted, and its roll-ups with it
        now = timezone.now()
        DailyUsage.objects.filter(tenant_id=tenant_id, day=day).delete()
        DailyUsage.objects.bulk_create(
            DailyUsage(
                tenant_id=tenant_id,
                agent_id=agent_day.agent_id,
                agent_name=agent_day.agent_name,
                day=day,
                updated_at=now,
                **agent_day.totals,
            )
            for agent_day in _sum_day(tenant_id, day)
        )


def _sum_day(tenant_id: int, day: datetime.date) -> list[_AgentDay]:
    start, end = day_bounds(day)
    calls = CallSession.objects.filter(
        tenant_id=tenant_id,
        started_at__gte=start,
        started_at__lt=end,
        status=CallStatus.ENDED,
        cost_computed_at__isnull=False,
    )
    groups: dict[tuple[int | None, str], _AgentDay] = {}

    def group(agent_id: int | None, agent_name: str) -> _AgentDay:
        key = _group_key(agent_id, agent_name)
        if key not in groups:
            groups[key] = _AgentDay(agent_id, agent_name)
        return groups[key]

    call_sums = calls.values("agent_id", "agent_name").annotate(
        calls=Count("pk"),
        duration_ms=Sum("duration_ms"),
        carrier_minutes=Sum("carrier_minutes"),
        carrier_cost=Sum("carrier_cost"),
        cost=Sum("cost"),
        billed=Sum("billed_amount"),
        latest_start=Max("started_at"),
    )
    for row in call_sums:
        agent_day = group(row["agent_id"], row["agent_name"])
        for name in ("calls", "duration_ms", "carrier_minutes", "carrier_cost", "cost", "billed"):
            agent_day.totals[name] += row[name] or 0
        # A renamed agent's row carries the name of its latest call that day.
        if agent_day.latest_start is None or row["latest_start"] > agent_day.latest_start:
            agent_day.latest_start = row["latest_start"]
            agent_day.agent_name = row["agent_name"]
    token_sums = (
        UsageRecord.objects.filter(call__in=calls)
        .values("call__agent_id", "call__agent_name")
        .annotate(**{name: Sum(name) for name in TOKEN_FIELDS})
    )
    for tokens in token_sums:
        agent_day = group(tokens["call__agent_id"], tokens["call__agent_name"])
        for name in TOKEN_FIELDS:
            agent_day.totals[name] += tokens[name] or 0  # type: ignore[literal-required]
    return list(groups.values())


@dataclass(frozen=True)
class Reconciliation:
    """What a reconciliation run did: the calls it settled and the days it re-rolled."""

    settled_call_ids: list[int]
    settled_tenant_ids: set[int]
    days: list[tuple[int, datetime.date]]


def reconcile(today: datetime.date | None = None) -> Reconciliation:
    """Settle every ended call whose settlement was missed, then re-roll the days they
    started on, and yesterday and today of every tenant with calls or roll-ups then."""
    today = today or utc_day(timezone.now())
    first = today - datetime.timedelta(days=RECONCILED_DAYS - 1)
    days: set[tuple[int, datetime.date]] = set()
    settled: list[int] = []
    settled_tenants: set[int] = set()
    missed = CallSession.objects.filter(
        status=CallStatus.ENDED, cost_computed_at__isnull=True
    ).values_list("pk", flat=True)
    for call_id in missed.iterator():
        try:
            call = settle_call(call_id)
        except OperationalError:
            raise  # the database is away: the task retries the whole run
        except Exception:
            # One call that cannot be settled must not hold up everyone else's roll-ups.
            logger.exception("reconciliation could not settle call=%s", call_id)
            continue
        settled.append(call.pk)
        settled_tenants.add(call.tenant_id)
        days.add((call.tenant_id, utc_day(call.started_at)))
    if settled:
        logger.warning("reconciliation settled %d missed calls", len(settled))
    recent_start, _ = day_bounds(first)
    _, recent_end = day_bounds(today)
    tenants = set(
        CallSession.objects.filter(started_at__gte=recent_start, started_at__lt=recent_end)
        .values_list("tenant_id", flat=True)
        .distinct()
    ) | set(
        DailyUsage.objects.filter(day__gte=first, day__lte=today)
        .values_list("tenant_id", flat=True)
        .distinct()
    )
    for tenant_id in tenants:
        for offset in range(RECONCILED_DAYS):
            days.add((tenant_id, first + datetime.timedelta(days=offset)))
    for tenant_id, day in sorted(days):
        roll_up_day(tenant_id, day)
    return Reconciliation(
        settled_call_ids=settled, settled_tenant_ids=settled_tenants, days=sorted(days)
    )
