"""Periodic work on calls (scheduled in koe/celery.py)."""

from __future__ import annotations

from celery import shared_task

from calls.liveness import end_lost_calls


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60)
def end_lost_calls_task() -> int:
    """End the calls of server processes that stopped beating (idempotent: an ended
    call is not ended twice)."""
    return end_lost_calls()
