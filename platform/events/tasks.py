"""The Celery task that delivers an event, retrying with backoff."""

from __future__ import annotations

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from events.delivery import (
    MAX_ATTEMPTS,
    Outcome,
    attempt_delivery,
    record_interruption,
    retry_delay,
)


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
        raise self.retry(countdown=retry_delay(attempt.attempts))
    return attempt.outcome.value
