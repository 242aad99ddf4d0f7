"""Removing what calls stored, one batch per transaction: shared by the purge and erasure.

Each batch locks the calls it removes content from and re-applies the condition that
chose them inside the transaction, so a call put under legal hold, or purged by another
worker, since it was listed is left alone. Recording files are deleted only after the
transaction that deleted their rows commits: a crash in between leaves a file that no row
names, which the reconcile step removes; never a row whose file has gone silently.

Call exports copy transcripts, so removing a transcript removes the exports that hold it
(``audit.exports.remove_exports_holding``): once inside the batch's transaction, so both
commit together, and once after it, for an export that recorded the calls in between.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from django.apps import apps
from django.core.files.storage import default_storage
from django.db import models, transaction

from audit.exports import exports_holding, remove_exports_holding
from audit.models import RemovedReason
from calls.models import CallSession, Recording, TranscriptItem
from events.models import OutboundEvent

logger = logging.getLogger(__name__)

BATCH_SIZE = 200


@dataclass
class Counts:
    """What a purge or an erasure removed (or, in a dry run, would remove); PurgeLog's."""

    transcripts: int = 0
    transcript_items: int = 0
    tool_invocations: int = 0
    recordings: int = 0
    recording_files: int = 0
    events: int = 0
    exports: int = 0
    orphan_files: int = 0
    missing_files: int = 0
    held_calls: int = 0
    active_calls: int = 0
    # A dry run counts each export once, though several batches name its calls.
    exports_seen: set[int] = field(default_factory=set, repr=False, metadata={"count": False})

    def as_dict(self) -> dict[str, int]:
        return {
            item.name: getattr(self, item.name)
            for item in fields(self)
            if item.metadata.get("count", True)
        }

    def add_recording_files(self, number: int) -> None:
        self.recording_files += number

    @property
    def removed(self) -> int:
        return sum(
            (self.transcripts, self.recordings, self.events, self.orphan_files, self.missing_files)
        )


def tool_invocations() -> models.Manager[Any]:
    # The platform core names the tools app's model by label; it never imports it.
    return apps.get_model("tools", "ToolInvocation")._default_manager  # type: ignore[no-any-return]


def id_batches(queryset: models.QuerySet[Any], size: int = BATCH_SIZE) -> Iterator[list[int]]:
    """Primary keys of ``queryset`` in ascending batches (keyset, so memory stays bounded
    and a batch whose rows another worker holds is passed over, not fetched forever)."""
    last = 0
    while True:
        ids = list(queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:size])
        if not ids:
            return
        yield ids
        last = ids[-1]


def lock(queryset: models.QuerySet[Any], ids: list[int], *, wait: bool) -> list[int]:
    """Lock the rows of ``ids`` that still match ``queryset``; inside a transaction.

    ``wait=False`` passes over rows another transaction holds (a concurrent purge, a
    live call being updated): the next run comes back to them. SQLite has no row locks;
    Koe opens its transactions IMMEDIATE there, which serialises writers instead.
    """
    locked = queryset.filter(pk__in=ids).select_for_update(skip_locked=not wait)
    return list(locked.values_list("pk", flat=True))


def content_of_invocations(call_ids: list[int]) -> models.QuerySet[Any]:
    return (
        tool_invocations()
        .filter(call_id__in=call_ids)
        .filter(models.Q(arguments__isnull=False) | ~models.Q(result=""))
    )


def remove_transcripts(
    calls: models.QuerySet[CallSession],
    ids: list[int],
    counts: Counts,
    *,
    now: datetime,
    dry_run: bool,
    wait: bool = False,
    export_reason: RemovedReason = RemovedReason.RETENTION,
) -> None:
    """Delete the transcripts of these calls: items, joined text, the agent's follow-up
    reason, and tool invocations' arguments and results (their rows stay, for statistics);
    and the exports that copied any of them (``export_reason`` says why, on their page)."""
    if dry_run:
        counts.transcripts += len(ids)
        counts.transcript_items += TranscriptItem.objects.filter(call_id__in=ids).count()
        counts.tool_invocations += content_of_invocations(ids).count()
        count_exports(ids, counts)
        return
    with transaction.atomic():
        locked = lock(calls, ids, wait=wait)
        if not locked:
            return
        items, _ = TranscriptItem.objects.filter(call_id__in=locked).delete()
        blanked = content_of_invocations(locked).update(arguments=None, result="")
        CallSession.objects.filter(pk__in=locked).update(
            transcript_text="", follow_up_reason="", transcript_purged_at=now
        )
        exports = remove_exports_holding(locked, export_reason, now=now)
    exports += remove_exports_holding(locked, export_reason, now=now)
    counts.transcripts += len(locked)
    counts.transcript_items += items
    counts.tool_invocations += blanked
    counts.exports += exports


def count_exports(call_ids: list[int], counts: Counts) -> None:
    """Dry run: count the exports that removing these calls' content would remove."""
    found = set(exports_holding(call_ids).values_list("pk", flat=True))
    counts.exports += len(found - counts.exports_seen)
    counts.exports_seen |= found


def remove_recordings(
    calls: models.QuerySet[CallSession],
    ids: list[int],
    counts: Counts,
    *,
    now: datetime,
    dry_run: bool,
    wait: bool = False,
) -> None:
    """Delete these calls' recording rows, then (once that commits) their files."""
    if dry_run:
        recordings = Recording.objects.filter(call_id__in=ids)
        counts.recordings += recordings.count()
        counts.recording_files += recordings.exclude(file="").count()
        return
    with transaction.atomic():
        locked = lock(calls, ids, wait=wait)
        if not locked:
            return
        rows = Recording.objects.filter(call_id__in=locked)
        names = [name for name in rows.values_list("file", flat=True) if name]
        deleted, _ = rows.delete()
        CallSession.objects.filter(pk__in=locked).update(recording_purged_at=now)
        transaction.on_commit(lambda: delete_files(names, counts.add_recording_files))
    counts.recordings += deleted


def delete_files(names: list[str], count: Callable[[int], None]) -> None:
    """Delete files from storage, counting those that were there; one failure (logged)
    does not keep the others: the reconcile step tries again on the next run."""
    removed = 0
    for name in names:
        try:
            if default_storage.exists(name):
                default_storage.delete(name)
                removed += 1
            else:
                logger.warning("Recording file %s was already gone", name)
        except Exception:  # any storage backend's error: logged, and retried by reconcile
            logger.exception("Could not delete recording file %s; reconcile will retry", name)
    count(removed)


def remove_events(
    events: models.QuerySet[OutboundEvent],
    ids: list[int],
    counts: Counts,
    *,
    dry_run: bool,
    wait: bool = False,
) -> None:
    """Delete events (the payload and the delivery record are the row)."""
    if dry_run:
        counts.events += len(ids)
        return
    with transaction.atomic():
        locked = lock(events, ids, wait=wait)
        deleted, _ = OutboundEvent.objects.filter(pk__in=locked).delete()
    counts.events += deleted
