"""Pricing usage as it is stored, and settling a call's cost once it has ended."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing import budgets
from billing.models import BillingSettings, ModelPrice
from billing.pricing import (
    CostBreakdown,
    Tokens,
    billed_amount,
    carrier_cost_of,
    carrier_minutes,
    carrier_price_in_force,
    cost_of,
    price_in_force,
)
from calls.models import CallSession, UsageRecord


def price_records(records: Iterable[UsageRecord]) -> None:
    """Set each new record's price and cost from the price in force at its time; once the
    records are committed, their cost counts towards the tenant's cached spending."""
    prices: dict[tuple[str, str], ModelPrice | None] = {}
    costs: dict[int, Decimal] = defaultdict(Decimal)
    for record in records:
        key = (record.provider, record.model)
        if key not in prices:
            prices[key] = price_in_force(record.provider, record.model, record.created_at)
        price = prices[key]
        record.price = price
        record.cost = cost_of(Tokens.of(record), price).total if price is not None else None
        if record.cost:
            costs[record.tenant_id] += record.cost
    for tenant_id, cost in costs.items():
        _count_when_committed(tenant_id, cost)


def _count_when_committed(tenant_id: int, cost: Decimal) -> None:
    # robust: a cache outage must not fail the store that already committed.
    transaction.on_commit(lambda: budgets.count_live_usage(tenant_id, cost), robust=True)


def breakdown_of(call: CallSession) -> CostBreakdown:
    """The call's cost by token kind (its responses priced as they were), and its carrier
    minutes' cost as it was settled."""
    total = CostBreakdown(carrier=call.carrier_cost or Decimal(0))
    for record in call.usage.select_related("price"):
        if record.price is not None:
            total = total + cost_of(Tokens.of(record), record.price)
    return total


def carrier_charge(call: CallSession) -> tuple[int | None, Decimal | None]:
    """A phone call's carrier minutes and their cost at the carrier's price in force when
    it started: (None, None) off the phone, (minutes, None) without a price then."""
    if not call.carrier:
        return None, None
    minutes = carrier_minutes(call.duration_ms or 0)
    price = carrier_price_in_force(call.carrier, call.carrier_direction, call.started_at)
    return minutes, None if price is None else carrier_cost_of(minutes, price)


@transaction.atomic
def settle_call(call_id: int) -> CallSession:
    """Sum the call's priced usage and its carrier minutes into its cost and billed amount.
    Idempotent: it recomputes from the usage rows, the call's duration and the prices in
    force at their times each time, so a retried task changes nothing."""
    call = CallSession.objects.select_for_update().select_related("tenant").get(pk=call_id)
    unpriced = [record for record in call.usage.all() if record.cost is None]
    if unpriced:
        price_records(unpriced)
        UsageRecord.objects.bulk_update(unpriced, ["price", "cost"])
    cost = sum((record.cost for record in call.usage.all() if record.cost is not None), Decimal(0))
    call.carrier_minutes, call.carrier_cost = carrier_charge(call)
    cost += call.carrier_cost or Decimal(0)
    billing = BillingSettings.objects.filter(tenant=call.tenant).first()
    margin = billing.margin_percent if billing else Decimal(0)
    fee = billing.fee_per_minute if billing else Decimal(0)
    call.cost = cost
    call.billed_amount = billed_amount(cost, call.duration_ms or 0, margin, fee)
    call.cost_computed_at = timezone.now()
    call.save(
        update_fields=[
            "cost",
            "billed_amount",
            "cost_computed_at",
            "carrier_minutes",
            "carrier_cost",
        ]
    )
    return call
