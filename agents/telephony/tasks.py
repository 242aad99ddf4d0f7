"""Celery tasks of batch calls: the dispatcher's tick (scheduled in koe/celery.py) and its
kick right after a batch is created or resumed.

Neither retries: the next tick, 15 s later, does the same work. Both are safe to run
twice or at once (see ``batch_dispatch``).
"""

from __future__ import annotations

from celery import shared_task
from django.db import transaction

from agents.telephony.batch_dispatch import dispatch, dispatch_due
from agents.telephony.models import CallBatch


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60)
def dispatch_batches() -> int:
    """Place the calls every batch may place now; the number placed."""
    return dispatch_due()


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60)
def dispatch_batch(batch_id: int) -> int:
    """Place the calls one batch (by primary key) may place now."""
    return dispatch(batch_id)


def dispatch_soon(batch: CallBatch) -> None:
    """Dispatch the batch once the current transaction commits (it must see the batch);
    inline where Celery runs eagerly (the embedded default)."""
    batch_id = batch.pk
    transaction.on_commit(lambda: dispatch_batch.delay(batch_id))
