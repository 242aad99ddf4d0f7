"""Call exports: one call or a filtered set, as JSON, CSV or a plain-text transcript.

An export is a ``CallExport`` row written by a Celery task (``audit.tasks``). The task
reads the calls in chunks (``.iterator(chunk_size=...)`` with their transcript prefetched
per chunk), writes each call to a temporary file as it goes and hands the finished file to
Django's default storage, so a set of any size never sits in memory. Only what the call's
consent let the platform keep exists to export: without transcript consent a call exports
its metadata (times, usage, consent) and no transcript text and no tool arguments.

What the file holds and how each format (JSON, CSV, plain text) writes it is
``audit.export_formats``; this module chooses the calls, runs and stores the export, tracks
its progress and signs its download links.

An export file copies transcripts, so it must not outlive them. Before the task reads a
chunk of calls it records them (``ExportedCall``, committed first); when erasure or the
retention purge removes calls' transcripts it removes the exports that hold any of them
(``remove_exports_holding``): the row says why, the file is deleted once that commits,
and a task still writing such an export throws its file away instead of publishing it.
Recording before reading is what makes this safe against an export running at the same
moment: a remover that looks for exports after its own transaction committed either finds
the export, or the export read the calls after the transcripts were gone.
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from django.core import signing
from django.core.files import File
from django.db import models, transaction
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, QueryDict
from django.utils import timezone

from audit.export_formats import EXTENSIONS, WRITERS, call_record
from audit.log import record_access
from audit.models import (
    AccessAction,
    CallExport,
    ExportedCall,
    ExportFormat,
    ExportStatus,
    RemovedReason,
)
from audit.timeline import build_timeline
from calls.end_users import masks_phone_numbers
from calls.filters import CallFilter
from calls.models import CallSession, Channel, TranscriptItem
from tenancy.models import Membership, Tenant
from tenancy.scoping import for_tenant

logger = logging.getLogger(__name__)

# Calls read per query; progress is saved once per chunk.
CHUNK_SIZE = 200
# How long a finished export's file is kept, and how long a download link works.
EXPORT_LIFETIME = timedelta(days=7)
DOWNLOAD_LINK_SECONDS = 300
DOWNLOAD_SALT = "koe.audit.export-download"

# Query string keys of the call list that are not filters.
NOT_FILTERS = frozenset({"page", "format"})


class ExportError(Exception):
    """An export that cannot be made as asked (the message is for the person asking)."""


class ExportRemoved(Exception):
    """The export was removed (erasure, retention) while its task was writing it."""


# --- choosing the calls ----------------------------------------------------------------------


def filters_from_query(query: str) -> dict[str, list[str]]:
    """The call list's query string as stored on the export (lists, without the page)."""
    parsed = QueryDict(query)
    return {key: parsed.getlist(key) for key in parsed if key not in NOT_FILTERS}


def filtered_calls(tenant: Tenant, filters: dict[str, list[str]]) -> QuerySet[CallSession]:
    """The tenant's calls that the call list shows for these filters."""
    data = QueryDict(mutable=True)
    for key, values in filters.items():
        data.setlist(key, [str(value) for value in values])
    # The call list's own filter, so the file holds what the list showed.
    form = CallFilter(data, tenant=tenant)
    if not form.is_valid():
        problems = "; ".join(
            f"{field}: {' '.join(map(str, errors))}" for field, errors in form.errors.items()
        )
        raise ExportError(f"These filters are not valid: {problems}")
    queryset: QuerySet[CallSession] = form.filter(for_tenant(CallSession, tenant))
    return queryset


def selected_calls(export: CallExport) -> QuerySet[CallSession]:
    call_id = export.params.get("call")
    if call_id:
        return for_tenant(CallSession, export.tenant).filter(public_id=call_id)
    return filtered_calls(export.tenant, export.params.get("filters") or {})


# --- starting an export ----------------------------------------------------------------------


def record_export(
    request: HttpRequest,
    membership: Membership,
    export_format: str,
    *,
    call: CallSession | None = None,
    filters: dict[str, list[str]] | None = None,
) -> CallExport:
    """Record the export and its access log row, in the caller's transaction; queuing its
    task is ``audit.tasks.start_export``'s.

    The filters are checked here too, so a bad query is a message now, not a failed export.
    Whether the file masks phone numbers is the member's role now: the file is theirs to
    download, and a role changed before the task runs must not widen what it holds.
    """
    if export_format not in ExportFormat.values:
        raise ExportError("Choose JSON, CSV or plain text.")
    if call is not None:
        params: dict[str, Any] = {"call": call.public_id}
    else:
        params = {"filters": filters or {}}
        filtered_calls(membership.tenant, params["filters"])
    user = membership.user
    with transaction.atomic():
        export = CallExport.objects.create(
            tenant=membership.tenant,
            requested_by=user,
            requested_by_name=user.email or user.get_username(),
            params=params,
            format=export_format,
            masks_phone_numbers=masks_phone_numbers(membership),
            expires_at=timezone.now() + EXPORT_LIFETIME,
        )
        record_access(
            request,
            membership,
            AccessAction.EXPORT,
            call=call,
            export=export.public_id,
            format=export_format,
            **({} if call is not None else {"filters": params["filters"]}),
        )
    return export


def withholds_numbers_from(export: CallExport, membership: Membership) -> bool:
    """Whether the export's file may show phone numbers that this member may not see (an
    owner's export, found by an auditor): the download is refused to them.

    Only a file that holds a phone call with an end user: an owner's export of widget
    calls shows no numbers, and anyone who may export may download it.
    """
    if export.masks_phone_numbers or not masks_phone_numbers(membership):
        return False
    phone_calls = ExportedCall.objects.filter(export=export, call__channel=Channel.PHONE)
    return phone_calls.exclude(call__end_user_ref="").exists()


# --- writing ---------------------------------------------------------------------------------


def records(
    calls: QuerySet[CallSession],
    before_reading: Callable[[list[int]], None] | None = None,
    *,
    masks_phone_numbers: bool = True,
) -> Iterator[dict[str, Any]]:
    """Each call's export record, oldest first, reading CHUNK_SIZE calls (and their rows)
    per query; ``before_reading`` gets each chunk's call ids before their content is read.
    Phone calls' numbers are masked unless ``masks_phone_numbers`` is False."""
    ordered_ids = (
        calls.order_by("started_at", "pk").values_list("pk", flat=True).iterator(CHUNK_SIZE)
    )
    for ids in _chunks(ordered_ids, CHUNK_SIZE):
        if before_reading is not None:
            before_reading(ids)
        chunk = (
            CallSession.objects.filter(pk__in=ids)
            .order_by("started_at", "pk")
            .select_related(None)
            .prefetch_related(
                Prefetch("transcript", queryset=TranscriptItem.objects.order_by("sequence")),
                "tool_invocations",
            )
        )
        for call in chunk:
            invocations = sorted(
                call.tool_invocations.all(),  # type: ignore[attr-defined]  # reverse FK of tools
                key=lambda invocation: (invocation.created_at, invocation.pk),
            )
            timeline = build_timeline(call, call.transcript.all(), invocations)
            yield call_record(call, timeline, invocations, masks_phone_numbers=masks_phone_numbers)


def _chunks(values: Iterable[int], size: int) -> Iterator[list[int]]:
    chunk: list[int] = []
    for value in values:
        chunk.append(value)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_export(export_pk: int) -> CallExport:
    """Write the export's file; safe to run again (a redelivered task starts over).

    Raises ExportRemoved when erasure or retention removed the export meanwhile: nothing is
    published then, and what was written so far is thrown away.
    """
    export = CallExport.objects.select_related("tenant").get(pk=export_pk)
    if export.status == ExportStatus.DONE or export.is_removed:
        return export
    calls = selected_calls(export)
    total = calls.count()
    not_removed = CallExport.objects.filter(pk=export.pk, removed_at__isnull=True)
    if not not_removed.update(status=ExportStatus.RUNNING, total=total, done=0, error=""):
        raise ExportRemoved(export.public_id)

    def record_calls(call_ids: list[int]) -> None:
        # Committed before the calls are read (autocommit): see the module's docstring.
        # A rerun finds its rows already there; the pair is unique.
        ExportedCall.objects.bulk_create(
            [ExportedCall(export_id=export.pk, call_id=call_id) for call_id in call_ids],
            ignore_conflicts=True,
        )

    with tempfile.TemporaryFile() as raw:
        stream = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        writer = WRITERS[export.format](stream, export)
        for record in records(
            calls, before_reading=record_calls, masks_phone_numbers=export.masks_phone_numbers
        ):
            writer.write(record)
            if writer.count % CHUNK_SIZE == 0 and not not_removed.update(done=writer.count):
                raise ExportRemoved(export.public_id)
        writer.finish()
        stream.flush()
        stream.detach()
        size = raw.tell()
        raw.seek(0)
        if export.file:
            export.file.delete(save=False)  # a rerun replaces what an earlier run left
        name = f"{export.public_id}.{EXTENSIONS[ExportFormat(export.format)]}"
        export.file.save(name, File(raw, name=name), save=False)
    published = not_removed.update(
        status=ExportStatus.DONE,
        done=writer.count,
        total=writer.count,
        file=export.file.name,
        size_bytes=size,
        finished_at=timezone.now(),
    )
    if not published:
        # Removed while the file was being stored: it must not outlive the removal.
        export.file.delete(save=False)
        raise ExportRemoved(export.public_id)
    export.refresh_from_db()
    return export


def stop_removed_export(export_pk: int) -> None:
    """Finish an export that was removed while it ran, so its page stops waiting for it."""
    CallExport.objects.filter(pk=export_pk).exclude(status=ExportStatus.DONE).update(
        status=ExportStatus.FAILED, finished_at=timezone.now()
    )


def fail_export(export_pk: int, message: str) -> None:
    CallExport.objects.filter(pk=export_pk).exclude(status=ExportStatus.DONE).update(
        status=ExportStatus.FAILED, error=message, finished_at=timezone.now()
    )


def remove_expired_exports(now: datetime | None = None) -> int:
    """Delete the files of exports past their expiry, and of removed exports whose file an
    earlier attempt could not delete; the rows stay, as a record."""
    due = CallExport.objects.filter(
        models.Q(expires_at__lte=now or timezone.now()) | models.Q(removed_at__isnull=False)
    ).exclude(file="")
    removed = 0
    for export_pks in _chunks(due.order_by("pk").values_list("pk", flat=True), CHUNK_SIZE):
        removed += delete_export_files(export_pks)
    return removed


# --- removing exports whose calls' content went ---------------------------------------------


def exports_holding(call_ids: Iterable[int]) -> QuerySet[CallExport]:
    """Exports not yet removed that hold (or, still being written, may come to hold) any of
    these calls. An export whose file already expired holds nothing and is left alone."""
    holding = ExportedCall.objects.filter(call_id__in=list(call_ids)).values("export_id")
    return CallExport.objects.filter(pk__in=holding, removed_at__isnull=True).filter(
        ~models.Q(file="") | models.Q(status__in=[ExportStatus.PENDING, ExportStatus.RUNNING])
    )


def remove_exports_holding(
    call_ids: Iterable[int], reason: RemovedReason, *, now: datetime | None = None
) -> int:
    """Mark the exports holding any of these calls removed, and delete their files once that
    commits (the download refuses from the moment it commits). Returns how many.

    A file is forgotten (``file=""``) only after storage deleted it: a crash or a storage
    error in between leaves the name on the removed export, and the daily
    ``remove_expired_exports`` deletes it then. Call this inside the transaction that
    removes the calls' transcripts (so both commit together) and again after it commits
    (to catch an export that recorded the calls in between; see the module's docstring).
    """
    now = now or timezone.now()
    with transaction.atomic():
        found = list(
            exports_holding(call_ids)
            .select_for_update()
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if not found:
            return 0
        CallExport.objects.filter(pk__in=found).update(removed_at=now, removed_reason=reason)
        transaction.on_commit(lambda: delete_export_files(found))
    logger.info("Removed %d export(s): %s", len(found), RemovedReason(reason).label)
    return len(found)


def delete_export_files(export_pks: list[int]) -> int:
    """Delete these exports' files and forget their names; returns how many went. One
    failure is logged and does not keep the rest (the next daily run tries it again)."""
    deleted = 0
    for export in CallExport.objects.filter(pk__in=export_pks).exclude(file=""):
        try:
            export.file.delete(save=False)
        except Exception:  # any storage backend's error: logged, retried by the daily task
            logger.exception("Could not delete the file %s of export %s", export.file.name, export)
            continue
        CallExport.objects.filter(pk=export.pk).update(file="")
        deleted += 1
    return deleted


# --- download links --------------------------------------------------------------------------


def download_token(export: CallExport) -> str:
    """A short-lived token naming one export of one tenant, for its download link."""
    return signing.dumps(
        {"export": export.public_id, "tenant": export.tenant.public_id}, salt=DOWNLOAD_SALT
    )


def export_id_from_token(token: str, tenant: Tenant) -> str | None:
    """The export a link names, if the link is genuine, recent and for this tenant."""
    try:
        value = signing.loads(token, salt=DOWNLOAD_SALT, max_age=DOWNLOAD_LINK_SECONDS)
    except signing.BadSignature:  # SignatureExpired is a BadSignature
        return None
    if not isinstance(value, dict) or value.get("tenant") != tenant.public_id:
        return None
    export_id = value.get("export")
    return export_id if isinstance(export_id, str) else None
