"""Writing what a live call produces: transcript (as consent allows), usage, its end.

Called by the call core on the calls' database threads (``foundation.call_threads``) in
batches, off the audio path. Plain data in (dicts and lists), so the core need not know the broker.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from billing.settlement import price_records
from billing.tasks import settle_call_task
from calls.models import CallSession, CallStatus, TranscriptItem, UsageRecord
from calls.signals import call_ended
from events.actions import emit_call_ended
from foundation.text import storable


@transaction.atomic
def store_progress(
    call_id: int,
    *,
    transcript: list[dict[str, Any]],
    usage: list[dict[str, Any]],
    interrupted_item_ids: list[str],
    turn_count: int,
    latencies_ms: list[int],
) -> None:
    call = CallSession.objects.select_for_update().get(pk=call_id)
    transcript = [
        {key: storable(value) if isinstance(value, str) else value for key, value in entry.items()}
        for entry in transcript
    ]
    if call.stores_transcript:  # else nothing said is kept, not even what was cut short
        if transcript:
            start = (call.transcript.aggregate(top=Max("sequence"))["top"] or 0) + 1
            TranscriptItem.objects.bulk_create(
                TranscriptItem(call=call, sequence=start + offset, **entry)
                for offset, entry in enumerate(transcript)
            )
        if interrupted_item_ids:
            call.transcript.filter(role="assistant", item_id__in=interrupted_item_ids).update(
                interrupted=True
            )
    # A retried flush must not count a response twice (the call row is locked here).
    seen = set(
        call.usage.filter(response_id__in=[entry["response_id"] for entry in usage]).values_list(
            "response_id", flat=True
        )
    )
    totals = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    records = []
    for entry in usage:
        if entry["response_id"] in seen:
            continue
        seen.add(entry["response_id"])
        fields = UsageRecord.fields_from_usage(entry["usage"])
        for key in totals:
            totals[key] += fields[key]
        records.append(
            UsageRecord(
                call=call,
                tenant_id=call.tenant_id,
                response_id=entry["response_id"],
                provider=call.provider,
                model=call.model,
                **fields,
            )
        )
    price_records(records)
    UsageRecord.objects.bulk_create(records)
    # The searchable text follows the transcript in the same transaction (the row is locked).
    spoken = [
        entry["text"]
        for entry in transcript
        if entry.get("role") in ("user", "assistant") and entry.get("text")
    ]
    searchable = (
        {"transcript_text": "\n".join(filter(None, [call.transcript_text, *spoken]))}
        if call.stores_transcript and spoken
        else {}
    )
    CallSession.objects.filter(pk=call.pk).update(
        **searchable,
        turn_count=turn_count,
        latencies_ms=latencies_ms,
        input_tokens=F("input_tokens") + totals["input_tokens"],
        output_tokens=F("output_tokens") + totals["output_tokens"],
        total_tokens=F("total_tokens") + totals["total_tokens"],
    )


def end_call(
    call_id: int, reason: str, detail: str = "", *, ended_at: datetime | None = None
) -> CallSession:
    """Mark the call ended once and emit ``call.ended``; a second end (e.g. client close after
    a timeout) is a no-op. ``ended_at``: when it really ended, if that was earlier (an end
    written late, after an outage, or for a process found dead)."""
    with transaction.atomic():
        call = CallSession.objects.select_for_update().get(pk=call_id)
        if call.status == CallStatus.ENDED:
            return call
        now = max(ended_at or timezone.now(), call.started_at)  # never before it started
        call.status = CallStatus.ENDED
        call.ended_at = now
        call.duration_ms = int((now - call.started_at).total_seconds() * 1000)
        call.end_reason = reason
        call.end_detail = storable(detail[:2000])
        call.save(update_fields=["status", "ended_at", "duration_ms", "end_reason", "end_detail"])
        # In the same transaction: the event exists exactly when the call ended, and is
        # delivered after the commit.
        emit_call_ended(call)
        # Its cost and the roll-ups follow in a task, once the end is committed.
        call_id = call.pk
        transaction.on_commit(lambda: settle_call_task.delay(call_id), robust=True)
        ended = call
        transaction.on_commit(lambda: call_ended.send(CallSession, call=ended), robust=True)
        return call
