"""A tenant's month-to-date spending against its monthly budget, and the notices it sends.

Spending is what the tenant is billed: settled calls' billed amounts, plus the usage that
live calls have stored so far at the tenant's margin (their per-minute fee and a phone
call's carrier minutes are counted when they settle, in the billed amount). It is read
on the call path (new calls, session tokens, the live-call watchdog), so it is cached per
tenant and month: a snapshot computed from the database, plus a counter that each
committed usage batch increments. A read is one cache round trip; the snapshot is
recomputed when it expires (KOE_BUDGET_CACHE_SECONDS) or a call settles, so the cached
figure is never staler than that.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Sum
from django.utils import timezone

from billing import signals
from billing.models import BillingSettings, BudgetMode
from calls.models import CallSession, UsageRecord
from foundation.cache import process_cache
from tenancy.models import Membership, Tenant
from tenancy.roles import Role

logger = logging.getLogger("koe.billing")

UTC = datetime.UTC
NOTICE_THRESHOLDS = (80, 100)  # percent of the monthly budget
NANO = Decimal(1_000_000_000)  # the live counter counts nano-dollars (cache counters are ints)
CENTS = Decimal("0.01")


def month_of(moment: datetime.datetime) -> str:
    """The budget month ("2026-11", UTC) a moment falls in."""
    return f"{moment.astimezone(UTC):%Y-%m}"


def month_start(moment: datetime.datetime) -> datetime.datetime:
    moment = moment.astimezone(UTC)
    return datetime.datetime(moment.year, moment.month, 1, tzinfo=UTC)


def _keys(tenant_id: int, month: str) -> tuple[str, str]:
    return f"koe:budget:{tenant_id}:{month}", f"koe:budget-live:{tenant_id}:{month}"


@dataclass(frozen=True)
class Budget:
    """A tenant's budget settings and its spending in ``month``, in billed dollars."""

    month: str
    spend: Decimal
    monthly_budget: Decimal | None = None
    mode: str = BudgetMode.SOFT
    overrun_percent: Decimal = Decimal(0)
    margin_percent: Decimal = Decimal(0)
    notified_80_month: str = ""
    notified_100_month: str = ""

    @property
    def is_hard(self) -> bool:
        return self.mode == BudgetMode.HARD and self.monthly_budget is not None

    @property
    def refuses_new_calls(self) -> bool:
        """Hard budget at or over 100%: no new calls, no new session tokens."""
        return self.is_hard and self.spend >= (self.monthly_budget or 0)

    @property
    def ends_live_calls(self) -> bool:
        """Hard budget past the overrun: live calls end too."""
        limit = (self.monthly_budget or 0) * (1 + self.overrun_percent / 100)
        return self.is_hard and self.spend >= limit

    def has_crossed(self, threshold: int) -> bool:
        if self.monthly_budget is None or self.spend <= 0:
            return False
        return self.spend >= self.monthly_budget * threshold / 100

    @property
    def notices_due(self) -> list[int]:
        """Thresholds crossed this month whose notice has not gone out."""
        sent = {80: self.notified_80_month, 100: self.notified_100_month}
        return [
            threshold
            for threshold in NOTICE_THRESHOLDS
            if self.has_crossed(threshold) and sent[threshold] != self.month
        ]

    def billed(self, cost: Decimal) -> Decimal:
        """A provider cost as the tenant is billed for it (the margin, not the minute fee)."""
        return cost * (1 + self.margin_percent / 100)

    def snapshot(self) -> dict[str, Any]:
        # Plain values in the cache: nothing breaks when this class changes between releases.
        return {
            "spend": str(self.spend),
            "budget": None if self.monthly_budget is None else str(self.monthly_budget),
            "mode": self.mode,
            "overrun": str(self.overrun_percent),
            "margin": str(self.margin_percent),
            "notified_80": self.notified_80_month,
            "notified_100": self.notified_100_month,
        }

    @classmethod
    def from_snapshot(cls, month: str, snapshot: dict[str, Any], live_nano: int) -> Budget:
        return cls(
            month=month,
            spend=Decimal(snapshot["spend"]) + Decimal(live_nano) / NANO,
            monthly_budget=None if snapshot["budget"] is None else Decimal(snapshot["budget"]),
            mode=snapshot["mode"],
            overrun_percent=Decimal(snapshot["overrun"]),
            margin_percent=Decimal(snapshot["margin"]),
            notified_80_month=snapshot["notified_80"],
            notified_100_month=snapshot["notified_100"],
        )


def budget_of(tenant_id: int) -> Budget:
    """The tenant's budget and this month's spending: from the cache when it is there."""
    month = month_of(timezone.now())
    snapshot_key, live_key = _keys(tenant_id, month)
    found = process_cache().get_many([snapshot_key, live_key])
    if snapshot_key in found and live_key in found:
        return Budget.from_snapshot(month, found[snapshot_key], int(found[live_key]))
    return refresh(tenant_id)


def refresh(tenant_id: int) -> Budget:
    """Compute this month's spending from the database and cache it."""
    now = timezone.now()
    month, start = month_of(now), month_start(now)
    billing = BillingSettings.objects.filter(tenant_id=tenant_id).first()
    settled = CallSession.objects.filter(
        tenant_id=tenant_id, started_at__gte=start, cost_computed_at__isnull=False
    ).aggregate(total=Sum("billed_amount"))["total"] or Decimal(0)
    live_cost = UsageRecord.objects.filter(
        tenant_id=tenant_id,
        created_at__gte=start,
        call__started_at__gte=start,
        call__cost_computed_at__isnull=True,
    ).aggregate(total=Sum("cost"))["total"] or Decimal(0)
    budget = Budget(month=month, spend=Decimal(0))
    if billing is not None:
        budget = Budget(
            month=month,
            spend=Decimal(0),
            monthly_budget=billing.monthly_budget,
            mode=billing.budget_mode,
            overrun_percent=billing.overrun_percent,
            margin_percent=billing.margin_percent,
            notified_80_month=billing.notified_80_month,
            notified_100_month=billing.notified_100_month,
        )
    budget = replace(budget, spend=settled + budget.billed(live_cost))
    snapshot_key, live_key = _keys(tenant_id, month)
    # The counter restarts with the snapshot: usage committed from now on is added to it.
    process_cache().set_many(
        {snapshot_key: budget.snapshot(), live_key: 0}, timeout=settings.KOE_BUDGET_CACHE_SECONDS
    )
    return budget


def forget(tenant_id: int) -> None:
    """Drop the cached spending (a call settled, the settings changed): the next read
    recomputes it."""
    process_cache().delete_many(_keys(tenant_id, month_of(timezone.now())))


def count_live_usage(tenant_id: int, cost: Decimal) -> None:
    """Add a live call's usage, stored and committed just now, to the cached spending.

    Without a cached snapshot there is nothing to add to: the next read computes it from
    the database, this usage included. Crossing a notice threshold queues the notices.
    """
    month = month_of(timezone.now())
    snapshot_key, live_key = _keys(tenant_id, month)
    snapshot = process_cache().get(snapshot_key)
    if snapshot is None or cost <= 0:
        return
    margin = Decimal(snapshot["margin"])
    nano = int((cost * (1 + margin / 100) * NANO).to_integral_value(ROUND_HALF_EVEN))
    try:
        live = process_cache().incr(live_key, nano)
    except ValueError:  # the counter expired meanwhile: the next read recomputes both
        return
    if Budget.from_snapshot(month, snapshot, live).notices_due:
        signals.notices_due.send(sender=Budget, tenant_id=tenant_id)


# --- notices ---------------------------------------------------------------------------


def send_due_notices(tenant_id: int) -> list[int]:
    """E-mail the tenant's owners about each threshold (80%, 100%) this month's spending
    has crossed, once a month each, whichever worker gets here first. Returns the
    thresholds this call claimed. A jump past both sends one notice, the 100% one."""
    budget = refresh(tenant_id)
    claimed = [
        threshold for threshold in budget.notices_due if _claim(tenant_id, threshold, budget.month)
    ]
    if not claimed:
        return []
    forget(tenant_id)  # the cached notice months are out of date
    try:
        _email_owners(tenant_id, budget, max(claimed))
    except Exception:
        # Unclaim, so that the retried task sends it.
        for threshold in claimed:
            BillingSettings.objects.filter(
                tenant_id=tenant_id, **{_notified_field(threshold): budget.month}
            ).update(**{_notified_field(threshold): ""})
        raise
    return claimed


def _notified_field(threshold: int) -> str:
    return f"notified_{threshold}_month"


def _claim(tenant_id: int, threshold: int, month: str) -> bool:
    """Mark the threshold's notice sent for the month; one update, so one worker wins."""
    field = _notified_field(threshold)
    return bool(
        BillingSettings.objects.filter(tenant_id=tenant_id)
        .exclude(**{field: month})
        .update(**{field: month})
    )


def _email_owners(tenant_id: int, budget: Budget, threshold: int) -> None:
    tenant = Tenant.objects.get(pk=tenant_id)
    recipients = sorted(
        {
            email
            for email in Membership.objects.filter(
                tenant_id=tenant_id, role=Role.OWNER
            ).values_list("user__email", flat=True)
            if email
        }
    )
    if not recipients:
        logger.warning("budget notice %s%% for tenant=%s: no owner e-mail", threshold, tenant_id)
        return
    limit = budget.monthly_budget or Decimal(0)
    spent = budget.spend.quantize(CENTS, ROUND_HALF_EVEN)
    share = (budget.spend / limit * 100).quantize(Decimal(1)) if limit else Decimal(100)
    if threshold >= 100:
        subject = f"{tenant.name} has reached its monthly budget on Koe"
    else:
        subject = f"{tenant.name} has used {threshold}% of its monthly budget on Koe"
    if budget.mode == BudgetMode.HARD:
        consequence = (
            "This is a hard budget: at 100% new calls are refused until the month ends or the "
            f"budget is raised, and calls in progress end once spending passes it by "
            f"{budget.overrun_percent.normalize():f}%."
        )
    else:
        consequence = "This is a soft budget: calls go on; this is a notice only."
    send_mail(
        subject=subject,
        message=(
            f"{tenant.name} has spent ${spent} of its ${limit} budget for {budget.month} "
            f"({share}%).\n\n{consequence}\n\n"
            f"See the usage and change the budget at {settings.KOE_SITE_URL}/\n"
        ),
        from_email=None,
        recipient_list=recipients,
    )
    logger.info("budget notice %s%% sent tenant=%s month=%s", threshold, tenant_id, budget.month)
