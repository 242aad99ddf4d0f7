"""Reconciling recordings in storage with their rows: what a crash or a bug left behind.

The purge runs it for each tenant after removing what its policy made due, in three steps:

1. Recovery. A recorder that died with its server process (a crash, a killed deploy) left
   its row in ``recording`` status and the audio it had flushed as parts. Once the call is
   over (ended, or lost: still marked active long after any call could last) and a safety
   margin has passed, the parts are composed into the WAV and the row completed. A row
   with nothing to compose says the recording failed. ``failed`` rows whose parts were
   left behind are recovered too.
2. Orphans. A file that no Recording row names, and parts that no recording waits for
   (no row, or a row already complete), are removed once older than the margin.
3. Lost files. A row whose file has gone from storage keeps its row, with the file name
   cleared, so the call page says the recording is no longer available.

Reconcile never sets ``recording_purged_at``: that says a retention policy (or an erasure)
removed the recording on purpose, and the call page shows it. Calls under legal hold keep
every file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from django.core.files.storage import default_storage
from django.db import models

from calls.mixer import RecordingError
from calls.models import CallSession, Recording, RecordingStatus
from calls.recordings import recover_recording
from retention.policies import is_live, with_age_reference
from retention.removal import Counts, id_batches
from tenancy.models import Tenant

logger = logging.getLogger(__name__)

# Files younger than this, and rows of calls that ended more recently, are left alone:
# a recorder may still be writing or finishing them.
SAFETY_MARGIN = timedelta(hours=1)
PARTS_FOLDER = "parts"
NAME_BATCH_SIZE = 500
# A call's public id at the start of a file name: "<prefix>_<lowercase and digits>" (see
# foundation.ids). A storage that renames a clash appends "_<random>"; the match stops before it.
_CALL_ID = re.compile(r"[a-z]+_[a-z0-9]+")
# Rows that have no file yet: a recorder is writing them, or died before it composed.
AWAITING_FILE = [RecordingStatus.RECORDING, RecordingStatus.FAILED]


def recordings_folder(tenant: Tenant) -> str:
    return f"recordings/{tenant.public_id}"


def reconcile_recordings(
    tenant: Tenant,
    counts: Counts,
    *,
    now: datetime,
    dry_run: bool,
    renew: Callable[[], None] = lambda: None,
) -> None:
    folder = recordings_folder(tenant)
    files = set(_walk(folder))
    # No file at all while rows name some looks like storage not mounted or misconfigured,
    # not like every recording lost: acting now would mark recordings failed or lost.
    # Leave everything, loudly.
    if not files and Recording.objects.filter(tenant=tenant).exclude(file="").exists():
        logger.error(
            "Tenant %s has recording rows but no recording files in storage; "
            "is MEDIA_ROOT (or the storage) configured? Nothing reconciled.",
            tenant.public_id,
        )
        return
    held = set(
        CallSession.objects.filter(tenant=tenant, legal_hold=True).values_list(
            "public_id", flat=True
        )
    )
    parts_prefix = f"{folder}/{PARTS_FOLDER}/"
    calls_with_parts = {
        _call_of_part(name, parts_prefix) for name in files if name.startswith(parts_prefix)
    }
    _recover(tenant, calls_with_parts, now=now, dry_run=dry_run, renew=renew)
    renew()
    if not dry_run:
        # Recovery composed files and deleted parts: look again rather than guess.
        files = set(_walk(folder))
    _remove_orphan_files(tenant, folder, files, held, counts, now=now, dry_run=dry_run)
    renew()
    _clear_lost_files(tenant, files, counts, now=now, dry_run=dry_run, renew=renew)


def _walk(folder: str) -> Iterator[str]:
    try:
        directories, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in files:
        yield f"{folder}/{name}"
    for directory in directories:
        yield from _walk(f"{folder}/{directory}")


def _call_of_part(name: str, parts_prefix: str) -> str:
    """The call public id of ``recordings/<tenant>/parts/<call>/<number>.pcm``."""
    return name[len(parts_prefix) :].split("/", 1)[0]


def _call_of_file(name: str) -> str:
    """The call public id a final file is named after (``<call>.wav``, or a renamed copy)."""
    match = _CALL_ID.match(name.rsplit("/", 1)[-1])
    return match.group(0) if match else ""


def _is_old(name: str, cutoff: datetime) -> bool:
    try:
        return default_storage.get_modified_time(name) <= cutoff
    except NotImplementedError:
        logger.warning("Storage cannot tell the age of %s: it is kept", name)
        return False
    except FileNotFoundError:
        return False  # gone since it was listed


def _chunks(names: set[str]) -> Iterator[list[str]]:
    ordered = sorted(names)
    for start in range(0, len(ordered), NAME_BATCH_SIZE):
        yield ordered[start : start + NAME_BATCH_SIZE]


# --- 1. recovery ------------------------------------------------------------------------


def _recover(
    tenant: Tenant,
    calls_with_parts: set[str],
    *,
    now: datetime,
    dry_run: bool,
    renew: Callable[[], None],
) -> None:
    """Compose the recordings whose recorder died, once their call is over."""
    over = with_age_reference(CallSession.objects.filter(tenant=tenant)).filter(
        ~is_live(now),
        # Ended long enough ago that no recorder can still be finishing its file.
        models.Q(age_reference__lte=now - SAFETY_MARGIN),
    )
    without_file = Recording.objects.filter(
        tenant=tenant, file="", call__in=models.Subquery(over.values("pk"))
    ).select_related("call", "tenant")
    # Still "recording" after the call is over: only a recorder that died leaves these,
    # so there are few. "failed" rows are many over time: only those with parts left.
    waiting = [without_file.filter(status=RecordingStatus.RECORDING)]
    waiting += [
        without_file.filter(status=RecordingStatus.FAILED, call__public_id__in=chunk)
        for chunk in _chunks(calls_with_parts)
    ]
    for rows in waiting:
        for ids in id_batches(rows):
            for recording in rows.filter(pk__in=ids):
                _recover_one(recording, calls_with_parts, now=now, dry_run=dry_run)
            renew()


def _recover_one(
    recording: Recording, calls_with_parts: set[str], *, now: datetime, dry_run: bool
) -> None:
    call = recording.call
    if call.public_id not in calls_with_parts:
        # Still "recording": it died before its first flush, there is no audio to recover.
        if recording.status == RecordingStatus.RECORDING and not dry_run:
            logger.warning("Recording of call %s left no audio: failed", call.public_id)
            _mark_failed(recording, now)
        return
    if dry_run:
        logger.info("Recording of call %s would be recovered from its parts", call.public_id)
        return
    try:
        stored = recover_recording(recording, keep_parts=call.legal_hold)
    except RecordingError as error:
        # The parts cannot make a faithful recording, now or later.
        logger.error("Recording of call %s cannot be recovered: %s", call.public_id, error)
        _mark_failed(recording, now)
        if not call.legal_hold:
            _delete_parts(recording)
        return
    except Exception:  # any storage backend's error: logged, and tried again next run
        logger.exception("Could not recover the recording of call %s", call.public_id)
        return
    if stored is None:  # the parts went since they were listed
        _mark_failed(recording, now)


def _mark_failed(recording: Recording, now: datetime) -> None:
    Recording.objects.filter(pk=recording.pk, status=RecordingStatus.RECORDING, file="").update(
        status=RecordingStatus.FAILED, completed_at=now
    )


def _delete_parts(recording: Recording) -> None:
    folder = f"{recordings_folder(recording.tenant)}/{PARTS_FOLDER}/{recording.call.public_id}"
    for name in _walk(folder):
        try:
            default_storage.delete(name)
        except Exception:  # any storage backend's error: the orphan step retries
            logger.exception("Could not delete recording part %s", name)


# --- 2. orphans --------------------------------------------------------------------------


def _remove_orphan_files(
    tenant: Tenant,
    folder: str,
    files: set[str],
    held: set[str],
    counts: Counts,
    *,
    now: datetime,
    dry_run: bool,
) -> None:
    cutoff = now - SAFETY_MARGIN
    parts_prefix = f"{folder}/{PARTS_FOLDER}/"
    parts = sorted(name for name in files if name.startswith(parts_prefix))
    finals = {name for name in files if not name.startswith(parts_prefix)}

    orphans: list[str] = []
    for batch in _chunks(finals):
        # Any row naming the file keeps it, whichever tenant's it is.
        named = set(Recording.objects.filter(file__in=batch).values_list("file", flat=True))
        orphans.extend(
            name for name in batch if name not in named and _call_of_file(name) not in held
        )

    # parts/<call public id>/...: kept while the call is live, held, or its recording
    # still waits for them (being written, or to be recovered).
    calls_with_parts = {_call_of_part(name, parts_prefix) for name in parts}
    kept_calls = set(held)
    for chunk in _chunks(calls_with_parts):
        kept_calls.update(
            CallSession.objects.filter(tenant=tenant, public_id__in=chunk)
            .filter(
                is_live(now) | models.Q(recording__status__in=AWAITING_FILE, recording__file="")
            )
            .values_list("public_id", flat=True)
        )
    orphans.extend(name for name in parts if _call_of_part(name, parts_prefix) not in kept_calls)

    for name in orphans:
        if not _is_old(name, cutoff):
            continue
        if dry_run:
            counts.orphan_files += 1
            continue
        # A row may have been saved for it since the batch was checked.
        if Recording.objects.filter(file=name).exists():
            continue
        try:
            default_storage.delete(name)
        except Exception:  # any storage backend's error: logged, tried again next run
            logger.exception("Could not delete orphan recording file %s", name)
            continue
        counts.orphan_files += 1
    if orphans:
        logger.info("Tenant %s: %d orphan recording files found", tenant.public_id, len(orphans))


# --- 3. lost files ------------------------------------------------------------------------


def _clear_lost_files(
    tenant: Tenant,
    files: set[str],
    counts: Counts,
    *,
    now: datetime,
    dry_run: bool,
    renew: Callable[[], None],
) -> None:
    """Rows naming a file that storage no longer has: the name is cleared, the row kept.

    The row still tells what was recorded (when, how long, its checksum); it no longer
    offers a file to play. It is not a purge: ``recording_purged_at`` stays unset.
    """
    named = Recording.objects.filter(tenant=tenant).exclude(file="")
    calls = with_age_reference(CallSession.objects.filter(tenant=tenant, legal_hold=False)).filter(
        ~is_live(now),
        # Ended long enough ago that no recorder can still be finishing its file.
        models.Q(age_reference__lte=now - SAFETY_MARGIN),
        pk__in=models.Subquery(named.values("call_id")),
    )
    for ids in id_batches(calls):
        stored = named.filter(call_id__in=ids).values_list("pk", "file")
        missing = [
            (pk, name)
            for pk, name in stored
            if name not in files and not default_storage.exists(name)
        ]
        for pk, name in missing:
            logger.error("Recording file %s has gone from storage", name)
            # Only if the row still names that file (a purge or an erasure may have won).
            if dry_run or Recording.objects.filter(pk=pk, file=name).update(file=""):
                counts.missing_files += 1
        renew()
