"""Celery tasks of billing: settle a call when it ends, roll up its day, reconcile daily,
and send budget notices. Each takes ids, is idempotent and retries database outages."""

from __future__ import annotations

import datetime
import logging

from celery import shared_task

from billing import budgets
from billing.rollups import reconcile, roll_up_day, utc_day
from billing.settlement import settle_call
from calls.models import CallSession
from foundation.retries import retried_on_outages

logger = logging.getLogger("koe.billing")

RETRYING = retried_on_outages()  # foundation.retries: a database outage is waited out


@shared_task(**RETRYING, soft_time_limit=60, time_limit=120)
def settle_call_task(call_id: int) -> str:
    """Price the call, roll up its day, and send any budget notice it brings about."""
    try:
        call = settle_call(call_id)
    except CallSession.DoesNotExist:
        logger.warning("settle: call=%s no longer exists", call_id)
        return "gone"
    roll_up_day(call.tenant_id, utc_day(call.started_at))
    _queue_due_notices(call.tenant_id)
    return str(call.cost)


@shared_task(**RETRYING, soft_time_limit=120, time_limit=180)
def roll_up_day_task(tenant_id: int, day: str) -> str:
    """Recompute one tenant's roll-ups of one UTC day (ISO date)."""
    roll_up_day(tenant_id, datetime.date.fromisoformat(day))
    return day


@shared_task(**RETRYING, soft_time_limit=1500, time_limit=1800)
def reconcile_usage() -> dict[str, int]:
    """Daily (beat): settle calls whose settlement was missed, re-roll the recent days."""
    result = reconcile()
    for tenant_id in result.settled_tenant_ids:
        _queue_due_notices(tenant_id)
    return {"settled": len(result.settled_call_ids), "days": len(result.days)}


# A mail server that fails (smtplib's errors are OSErrors) is waited out as well.
@shared_task(**retried_on_outages(OSError), soft_time_limit=60, time_limit=120)
def send_budget_notices_task(tenant_id: int) -> list[int]:
    """E-mail the owners about the budget thresholds crossed this month (once each)."""
    return budgets.send_due_notices(tenant_id)


def queue_budget_notices(sender: object, tenant_id: int, **kwargs: object) -> None:
    """Receiver of ``billing.signals.notices_due``: e-mail the owners from a worker."""
    send_budget_notices_task.delay(tenant_id)


def _queue_due_notices(tenant_id: int) -> None:
    # Recomputed after settling: the settled calls' usage now counts as billed (fee
    # included) rather than as live usage, and the call path reads the fresh figure.
    if budgets.refresh(tenant_id).notices_due:
        send_budget_notices_task.delay(tenant_id)
