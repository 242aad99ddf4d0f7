"""How a batch entry's call ended: completed, or retried while attempts remain.

``on_phone_call_final`` runs when the carrier reports a call's final status
(``progress.record_status``); ``settle_lost_calls`` each dispatcher tick catches the
calls whose end was reported before their entry knew them, never placed (the dispatcher
stopped), or never reported. A busy, unanswered or failed call is tried again the
batch's delay later until its attempts are spent (not in a cancelled batch); a batch
with nothing left to call or in a call is completed. Only the models are imported here:
the webhooks that report statuses must not depend on the dispatcher, which places calls
through them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from agents.telephony.models import (
    FINAL_STATUSES,
    UNFINISHED_BATCH_STATUSES,
    BatchEntry,
    BatchStatus,
    CallBatch,
    Direction,
    EntryStatus,
    PhoneCall,
    PhoneCallStatus,
)

# An entry claimed this long ago whose call was never linked lost its dispatcher.
CLAIM_TIMEOUT = timedelta(minutes=10)
# Past the 60-minute call cap and then some: a call still not final lost its callbacks.
IN_FLIGHT_LIMIT = timedelta(hours=2)
# What each final carrier status makes of an entry.
OUTCOMES: dict[str, str] = {
    PhoneCallStatus.COMPLETED: EntryStatus.COMPLETED,
    PhoneCallStatus.BUSY: EntryStatus.BUSY,
    PhoneCallStatus.NO_ANSWER: EntryStatus.NO_ANSWER,
    PhoneCallStatus.FAILED: EntryStatus.FAILED,
    PhoneCallStatus.CANCELED: EntryStatus.FAILED,
}


def on_phone_call_final(phone_call: PhoneCall) -> None:
    """The carrier reported the end of a call: settle the batch entry it was for, if any."""
    if phone_call.direction != Direction.OUTBOUND:
        return
    entry_id = (
        BatchEntry.objects.filter(last_phone_call=phone_call, status=EntryStatus.CALLING)
        .values_list("pk", flat=True)
        .first()
    )
    if entry_id is not None:
        outcome = OUTCOMES.get(phone_call.status, EntryStatus.FAILED)
        settle(entry_id, outcome, timezone.now(), phone_call=phone_call)


def settle_lost_calls(now: datetime) -> None:
    """Settle entries whose call ended unseen (its status came before the entry was
    linked to it), was never placed (the dispatcher stopped), or never reported an end."""
    lost = BatchEntry.objects.filter(status=EntryStatus.CALLING).filter(
        Q(last_phone_call__status__in=FINAL_STATUSES) | Q(updated_at__lt=now - CLAIM_TIMEOUT)
    )
    for entry in lost.select_related("last_phone_call"):
        phone_call = entry.last_phone_call
        if phone_call is not None and phone_call.status in FINAL_STATUSES:
            outcome = OUTCOMES.get(phone_call.status, EntryStatus.FAILED)
            settle(entry.pk, outcome, now, phone_call=phone_call)
        elif phone_call is None:
            # Twilio may have been asked before the dispatcher stopped: a retry could ring
            # twice, a rare price for not leaving the entry stuck.
            error = "The dispatcher stopped while placing this call; it counts as failed."
            settle(entry.pk, EntryStatus.FAILED, now, error=error)
        elif entry.updated_at < now - IN_FLIGHT_LIMIT:
            # A call that reached the agent was had, whatever its lost callbacks would say.
            outcome = EntryStatus.COMPLETED if phone_call.call_id else EntryStatus.FAILED
            error = "The carrier never reported how this call ended."
            settle(entry.pk, outcome, now, phone_call=phone_call, error=error)


def settle(
    entry_id: int,
    outcome: str,
    now: datetime,
    *,
    phone_call: PhoneCall | None = None,
    error: str = "",
    may_retry: bool = True,
) -> None:
    """One attempt's end: retried later while attempts remain, else the entry's outcome.
    A conditional update, so settling twice (a callback and the sweep) changes nothing."""
    entry = BatchEntry.objects.select_related("batch").filter(pk=entry_id).first()
    if entry is None or entry.status != EntryStatus.CALLING:
        return
    batch = entry.batch
    retries = (
        may_retry
        and outcome != EntryStatus.COMPLETED
        and entry.attempts < batch.max_attempts
        and batch.status != BatchStatus.CANCELLED
    )
    changes: dict[str, object] = {
        "status": EntryStatus.PENDING if retries else outcome,
        "last_status": phone_call.status if phone_call is not None else PhoneCallStatus.FAILED,
        "last_error": error[:300],
        "updated_at": now,
    }
    if retries:
        changes["next_attempt_at"] = now + timedelta(minutes=batch.retry_delay_minutes)
    settling = BatchEntry.objects.filter(pk=entry_id, status=EntryStatus.CALLING)
    if phone_call is not None:
        settling = settling.filter(last_phone_call=phone_call)
    if settling.update(**changes):
        complete_if_done(batch.pk, now)


def complete_if_done(batch_id: int, now: datetime) -> None:
    """A batch with no entry left to call or in a call is completed."""
    left = BatchEntry.objects.filter(
        batch_id=batch_id, status__in=[EntryStatus.PENDING, EntryStatus.CALLING]
    )
    if not left.exists():
        CallBatch.objects.filter(pk=batch_id, status__in=UNFINISHED_BATCH_STATUSES).update(
            status=BatchStatus.COMPLETED, completed_at=now, updated_at=now
        )
