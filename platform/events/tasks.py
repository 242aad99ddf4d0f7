"""The Celery tasks that deliver an event, retrying with backoff.

A retry soon enough is the task's own (a Celery countdown). One further off than the
broker holds an unconfirmed message (KOE_CELERY_VISIBILITY_TIMEOUT, after which Redis
hands it to a second worker and the event would be sent twice) is written on the event
instead, and sent by ``send_due_events``, which beat runs every minute.
"""

from __future__ import annotations

from datetime import timedelta

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from events.delivery import (
    MAX_ATTEMPTS,
    Outcome,
    attempt_delivery,
    record_interruption,
    retry_delay,
)
from events.models import EventStatus, OutboundEvent

# Leave the broker this much margin under its visibility timeout.
VISIBILITY_MARGIN_SECONDS = 60


def longest_countdown() -> int:
    timeout = int(settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"])
    return max(timeout - VISIBILITY_MARGIN_SECONDS, 0)


@shared_task(
    bind=True,
    acks_late=True,
    max_retries=MAX_ATTEMPTS - 1,
    soft_time_limit=30,
    time_limit=60,
    ignore_result=True,
)
def deliver_event(self: Task, event_id: int) -> str:
    """Deliver one OutboundEvent (by primary key); safe to run twice."""
    # Run eagerly (no broker), a retry would run at once, ignoring its countdown: a
    # receiver that is down would be hit eight times in a row. Fail it instead.
    may_retry = not self.request.is_eager
    try:
        attempt = attempt_delivery(event_id, may_retry=may_retry)
    except SoftTimeLimitExceeded:
        attempt = record_interruption(
            event_id, "The delivery took longer than its time limit.", may_retry=may_retry
        )
    if attempt.outcome == Outcome.RETRY:
        delay = retry_delay(attempt.attempts)
        if delay <= longest_countdown():
            raise self.retry(countdown=delay)
        OutboundEvent.objects.filter(pk=event_id, status=EventStatus.PENDING).update(
            next_attempt_at=timezone.now() + timedelta(seconds=delay)
        )
        return "scheduled"
    return attempt.outcome.value


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60)
def send_due_events() -> int:
    """Queue the events whose scheduled retry is due; each is queued once (the row's
    schedule is cleared by the one sweep that queues it)."""
    due = OutboundEvent.objects.filter(
        status=EventStatus.PENDING, next_attempt_at__lte=timezone.now()
    ).values_list("pk", "next_attempt_at")[:1000]
    queued = 0
    for event_id, scheduled in due:
        claimed = OutboundEvent.objects.filter(pk=event_id, next_attempt_at=scheduled).update(
            next_attempt_at=None
        )
        if claimed:
            deliver_event.delay(event_id)
            queued += 1
    return queued
