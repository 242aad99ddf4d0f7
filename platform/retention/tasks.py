"""The Celery task beat runs to purge what is past its retention policy."""

from __future__ import annotations

from celery import shared_task

from retention.models import PurgeTrigger
from retention.purge import purge_expired as purge_all_tenants
from tenancy.models import Tenant


@shared_task(
    acks_late=True,
    # Long for a task: it walks every tenant; each tenant's lease outlives a lost worker.
    soft_time_limit=50 * 60,
    time_limit=55 * 60,
    # A new run an hour later does the same work; a queued one is only a duplicate.
    expires=55 * 60,
)
def purge_expired(tenant_ids: list[int] | None = None) -> dict[str, int]:
    """Purge every tenant (or those ids); safe to run twice or on two workers at once.

    Returns the totals (kept as the task's result, and in the worker's log).
    """
    tenants = None
    if tenant_ids is not None:
        tenants = Tenant.objects.filter(pk__in=tenant_ids).order_by("pk")
    results = purge_all_tenants(trigger=PurgeTrigger.BEAT, tenants=tenants)
    totals: dict[str, int] = {"tenants": len(results), "busy": 0}
    for result in results:
        totals["busy"] += int(result.busy)
        for name, value in result.counts.as_dict().items():
            totals[name] = totals.get(name, 0) + value
    return totals
