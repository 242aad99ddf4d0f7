"""Reconciling recordings in storage with their rows: what a crash or a bug left behind.

A file in a tenant's recordings folder that no Recording row names is removed once it is
older than a safety margin (so a file being written is never touched), as are the parts a
call's recorder left when the call is no longer live. A Recording row whose file has gone
is deleted. Calls under legal hold keep both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from django.core.files.storage import default_storage
from django.db import models, transaction

from calls.models import CallSession, Recording
from retention.policies import is_live, with_age_reference
from retention.removal import Counts, id_batches, lock
from tenancy.models import Tenant

logger = logging.getLogger(__name__)

# Files younger than this, and rows of calls that ended more recently, are left alone:
# a recorder may still be writing or finishing them.
SAFETY_MARGIN = timedelta(hours=1)
PARTS_FOLDER = "parts"
NAME_BATCH_SIZE = 500


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
    held = set(
        CallSession.objects.filter(tenant=tenant, legal_hold=True).values_list(
            "public_id", flat=True
        )
    )
    _remove_orphan_files(tenant, folder, files, held, counts, now=now, dry_run=dry_run)
    renew()
    _remove_rows_without_file(tenant, files, counts, now=now, dry_run=dry_run, renew=renew)


def _walk(folder: str) -> Iterator[str]:
    try:
        directories, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return
    for name in files:
        yield f"{folder}/{name}"
    for directory in directories:
        yield from _walk(f"{folder}/{directory}")


def _is_old(name: str, cutoff: datetime) -> bool:
    try:
        return default_storage.get_modified_time(name) <= cutoff
    except NotImplementedError:
        logger.warning("Storage cannot tell the age of %s: it is kept", name)
        return False
    except FileNotFoundError:
        return False  # gone since it was listed


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
    finals = sorted(name for name in files if not name.startswith(parts_prefix))

    orphans: list[str] = []
    for start in range(0, len(finals), NAME_BATCH_SIZE):
        batch = finals[start : start + NAME_BATCH_SIZE]
        # Any row naming the file keeps it, whichever tenant's it is.
        named = set(Recording.objects.filter(file__in=batch).values_list("file", flat=True))
        orphans.extend(
            name
            for name in batch
            if name not in named and not any(call_id in name for call_id in held)
        )

    # parts/<call public id>/...: kept while the call is live or held.
    calls_with_parts = {name[len(parts_prefix) :].split("/", 1)[0] for name in parts}
    kept_calls = held | set(
        CallSession.objects.filter(tenant=tenant, public_id__in=calls_with_parts)
        .filter(is_live(now))
        .values_list("public_id", flat=True)
    )
    orphans.extend(
        name for name in parts if name[len(parts_prefix) :].split("/", 1)[0] not in kept_calls
    )

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


def _remove_rows_without_file(
    tenant: Tenant,
    files: set[str],
    counts: Counts,
    *,
    now: datetime,
    dry_run: bool,
    renew: Callable[[], None],
) -> None:
    rows = Recording.objects.filter(tenant=tenant)
    # No file at all while rows name some looks like storage not mounted or misconfigured,
    # not like every recording lost: deleting the rows now would turn the real files into
    # orphans. Leave them, loudly.
    if not files and rows.exclude(file="").exists():
        logger.error(
            "Tenant %s has recording rows but no recording files in storage; "
            "is MEDIA_ROOT (or the storage) configured? Rows kept.",
            tenant.public_id,
        )
        return
    calls = with_age_reference(CallSession.objects.filter(tenant=tenant, legal_hold=False)).filter(
        ~is_live(now),
        # Ended long enough ago that no recorder can still be finishing its file.
        models.Q(age_reference__lte=now - SAFETY_MARGIN),
        pk__in=models.Subquery(rows.values("call_id")),
    )
    for ids in id_batches(calls):
        stored = Recording.objects.filter(call_id__in=ids).values_list("call_id", "file")
        missing = [
            call_id
            for call_id, name in stored
            if not name or (name not in files and not default_storage.exists(name))
        ]
        if not missing:
            continue
        if dry_run:
            counts.missing_files += len(missing)
            continue
        with transaction.atomic():
            locked = lock(calls, missing, wait=False)
            deleted, _ = Recording.objects.filter(call_id__in=locked).delete()
            CallSession.objects.filter(pk__in=locked).update(recording_purged_at=now)
        counts.missing_files += deleted
        renew()
