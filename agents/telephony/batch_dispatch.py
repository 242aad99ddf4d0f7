"""The batch dispatcher: places the due calls of running batches, a few at a time.

``dispatch_due`` runs every 15 s from beat (``tasks``), ``dispatch`` also right after a
batch is created or resumed. Each places, through ``outbound.place_call``, the calls of
pending entries that are due and whose callee's local time is inside the batch's window,
up to the batch's concurrency and the room left under the tenant's concurrent-call cap.
When the tenant's cap or budget refuses a call (429) the rest wait for a later tick; a
carrier's refusal counts as a failed attempt (``batch_outcomes`` settles each entry as
its call ends, and retries it).

Two dispatchers may run at once: entries are claimed (pending → calling) in a short
transaction holding the batch's row (``select_for_update(skip_locked=True)``: the second
dispatcher skips a batch the first holds), and the calls are placed after it commits, so
that the carrier's status callbacks find them. A status callback that comes before its
entry is linked, or never comes, is caught by ``settle_lost_calls`` each tick.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, time
from enum import Enum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from agents.realtime.access import active_calls
from agents.telephony.batch_outcomes import complete_if_done, settle, settle_lost_calls
from agents.telephony.models import (
    DISPATCHED_BATCH_STATUSES,
    BatchEntry,
    BatchStatus,
    CallBatch,
    Direction,
    EntryStatus,
    PhoneCall,
    PhoneCallStatus,
)
from agents.telephony.outbound import (
    OUTBOUND_STREAM_TOKEN_TTL,
    OutboundCall,
    OutboundRefused,
    place_call,
)
from foundation.api import InvalidRequest
from tenancy.models import Tenant

logger = logging.getLogger("koe.telephony")

# place_call's field errors about the entry itself (the rest are about the batch).
ENTRY_FIELDS = frozenset({"to", "end_user", "metadata"})


class Placement(Enum):
    PLACED = "placed"
    SKIPPED = "skipped"  # this entry's attempt failed; go on with the next
    STOPPED = "stopped"  # no more calls now (the tenant's cap or budget, the batch paused)


def in_window(start: time, end: time, moment: time) -> bool:
    """Whether a time of day is in [start, end); a window may pass midnight."""
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end


def open_zones(batch: CallBatch, now: datetime, zones: Iterable[str]) -> list[str]:
    """The time zones in which it is now inside the batch's window."""
    opened = []
    for zone in zones:
        try:
            local = now.astimezone(ZoneInfo(zone)).time()
        except (ZoneInfoNotFoundError, ValueError):
            # Checked on creation; only a tz database update can drop a zone since.
            logger.warning("batch %s: unknown time zone %r", batch.public_id, zone)
            continue
        if in_window(batch.window_start, batch.window_end, local):
            opened.append(zone)
    return opened


def dispatch_due(now: datetime | None = None) -> int:
    """Settle lost calls, then dispatch every batch that may call now; the calls placed."""
    now = now or timezone.now()
    settle_lost_calls(now)
    batch_ids = CallBatch.objects.filter(
        status__in=DISPATCHED_BATCH_STATUSES, starts_at__lte=now
    ).order_by("starts_at", "pk")
    return sum(dispatch(batch_id, now) for batch_id in batch_ids.values_list("pk", flat=True))


def dispatch(batch_id: int, now: datetime | None = None) -> int:
    """Place the calls batch ``batch_id`` may place now (safe to repeat); the calls placed."""
    now = now or timezone.now()
    batch, claimed = _claim(batch_id, now)
    if batch is None:
        return 0
    if not claimed:
        complete_if_done(batch_id, now)
        return 0
    return _place(batch, claimed, now)


def _claim(batch_id: int, now: datetime) -> tuple[CallBatch | None, list[BatchEntry]]:
    with transaction.atomic():
        batch = (
            CallBatch.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("tenant")
            .filter(pk=batch_id, status__in=DISPATCHED_BATCH_STATUSES, starts_at__lte=now)
            .first()
        )
        if batch is None:
            return None, []
        if batch.status == BatchStatus.SCHEDULED:
            batch.status = BatchStatus.RUNNING
            batch.save(update_fields=["status", "updated_at"])
        entries = BatchEntry.objects.filter(batch=batch)
        room = batch.concurrency - entries.filter(status=EntryStatus.CALLING).count()
        due = entries.filter(status=EntryStatus.PENDING, next_attempt_at__lte=now)
        if room <= 0 or not due.exists():
            return batch, []
        zones = open_zones(
            batch, now, due.order_by().values_list("time_zone", flat=True).distinct()
        )
        if not zones:
            return batch, []
        tenant_room = _tenant_room(batch.tenant, now)
        if tenant_room <= 0:
            cap = batch.tenant.max_concurrent_calls
            _note(batch, f"Waiting: all {cap} of the tenant's concurrent calls are in use.")
            return batch, []
        picked = due.filter(time_zone__in=zones).order_by("next_attempt_at", "position")
        ids = list(picked.values_list("pk", flat=True)[: min(room, tenant_room)])
        entries.filter(pk__in=ids, status=EntryStatus.PENDING).update(
            status=EntryStatus.CALLING,
            attempts=F("attempts") + 1,
            last_phone_call=None,
            last_error="",
            updated_at=now,
        )
        claimed = list(entries.filter(pk__in=ids, status=EntryStatus.CALLING).order_by("position"))
    return batch, claimed


def _tenant_room(tenant: Tenant, now: datetime) -> int:
    # place_call counts connected calls only; the tenant's calls still ringing will be
    # calls in a moment, so they take room too.
    ringing = PhoneCall.objects.filter(
        tenant=tenant,
        direction=Direction.OUTBOUND,
        call__isnull=True,
        status__in=[PhoneCallStatus.QUEUED, PhoneCallStatus.RINGING, PhoneCallStatus.IN_PROGRESS],
        created_at__gte=now - OUTBOUND_STREAM_TOKEN_TTL,
    ).count()
    return tenant.max_concurrent_calls - active_calls(tenant) - ringing


def _place(batch: CallBatch, claimed: Sequence[BatchEntry], now: datetime) -> int:
    agent, number = batch.agent, batch.phone_number
    if agent is None or number is None:
        _release(claimed)
        lost = "agent" if agent is None else "number"
        _pause(batch, f"Paused: the batch's {lost} was deleted; cancel the batch.")
        return 0
    placed = 0
    for index, entry in enumerate(claimed):
        if (
            index
            and not CallBatch.objects.filter(
                pk=batch.pk, status__in=DISPATCHED_BATCH_STATUSES
            ).exists()
        ):
            _release(claimed[index:])  # paused or cancelled meanwhile
            break
        try:
            request = OutboundCall(
                agent_id=agent.public_id,
                to=entry.to,
                from_number=number.number,
                end_user=entry.end_user,
                metadata=entry.metadata,
            )
            outcome = _place_one(batch, entry, request, now)
        except BaseException:
            # The call being placed may have reached the carrier (the sweep settles it);
            # the entries after it were never asked for.
            _release(claimed[index + 1 :])
            raise
        if outcome == Placement.STOPPED:
            _release(claimed[index + 1 :])
            break
        placed += outcome == Placement.PLACED
    if placed:
        _note(batch, "")
    return placed


def _place_one(
    batch: CallBatch, entry: BatchEntry, request: OutboundCall, now: datetime
) -> Placement:
    try:
        phone_call = place_call(batch.tenant, request)
    except OutboundRefused as refused:
        if refused.status == 429:  # the tenant's cap or budget: not the entry's fault
            _release([entry])
            _note(batch, f"Waiting: {refused.message}")
            return Placement.STOPPED
        logger.info("batch %s: call refused: %s", batch.public_id, refused.message)
        settle(entry.pk, EntryStatus.FAILED, now, error=refused.message)
        return Placement.SKIPPED
    except InvalidRequest as invalid:
        reasons = " ".join(" ".join(messages) for messages in invalid.fields.values())
        if invalid.fields.keys() <= ENTRY_FIELDS:
            settle(entry.pk, EntryStatus.FAILED, now, error=reasons, may_retry=False)
            return Placement.SKIPPED
        # The agent or number changed since the batch was made (e.g. consent): a person
        # must decide, so the batch waits for them.
        _release([entry])
        _pause(batch, f"Paused: {reasons}")
        return Placement.STOPPED
    BatchEntry.objects.filter(
        pk=entry.pk, status=EntryStatus.CALLING, last_phone_call__isnull=True
    ).update(last_phone_call=phone_call, last_status=phone_call.status, updated_at=now)
    return Placement.PLACED


def _release(entries: Sequence[BatchEntry]) -> None:
    """Entries claimed but not called: pending again, the attempt not counted."""
    ids = [entry.pk for entry in entries]
    if not ids:
        return
    BatchEntry.objects.filter(
        pk__in=ids, status=EntryStatus.CALLING, last_phone_call__isnull=True
    ).update(status=EntryStatus.PENDING, attempts=F("attempts") - 1)
    # A batch cancelled while they were claimed must not keep them pending.
    BatchEntry.objects.filter(
        pk__in=ids, status=EntryStatus.PENDING, batch__status=BatchStatus.CANCELLED
    ).update(status=EntryStatus.CANCELLED)


def _note(batch: CallBatch, message: str) -> None:
    """Say (or stop saying) why the batch waits; written only when it changes."""
    CallBatch.objects.filter(pk=batch.pk).exclude(last_error=message[:300]).update(
        last_error=message[:300]
    )


def _pause(batch: CallBatch, message: str) -> None:
    logger.warning("batch %s paused: %s", batch.public_id, message)
    CallBatch.objects.filter(pk=batch.pk, status__in=DISPATCHED_BATCH_STATUSES).update(
        status=BatchStatus.PAUSED, last_error=message[:300], updated_at=timezone.now()
    )
