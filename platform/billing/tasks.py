"""Celery tasks of billing: settle a call when it ends (and roll it up)."""

from __future__ import annotations

from celery import shared_task

from billing.settlement import settle_call


@shared_task(
    acks_late=True, max_retries=5, default_retry_delay=30, soft_time_limit=60, time_limit=120
)
def settle_call_task(call_id: int) -> str:
    call = settle_call(call_id)
    return str(call.cost)
