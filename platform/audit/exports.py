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
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.core import signing
from django.core.files import File
from django.db import transaction
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, QueryDict
from django.utils import timezone
from django.utils.module_loading import import_string

from audit.export_formats import EXTENSIONS, WRITERS, call_record
from audit.log import record_access
from audit.models import AccessAction, CallExport, ExportFormat, ExportStatus
from audit.timeline import build_timeline
from calls.models import CallSession, TranscriptItem
from tenancy.models import Membership, Tenant
from tenancy.scoping import for_tenant

# Calls read per query; progress is saved once per chunk.
CHUNK_SIZE = 200
# How long a finished export's file is kept, and how long a download link works.
EXPORT_LIFETIME = timedelta(days=7)
DOWNLOAD_LINK_SECONDS = 300
DOWNLOAD_SALT = "koe.audit.export-download"

# The call list's filters are defined once, by the dashboard's filter form; the export
# re-applies the same form to the stored query so the file holds what the list showed.
# Named by dotted path, as the core names other apps' models by label: nothing in the
# platform core imports the dashboard.
CALL_FILTER_FORM = "dashboard.forms.calls.CallFilterForm"

# Query string keys of the call list that are not filters.
NOT_FILTERS = frozenset({"page", "format"})


class ExportError(Exception):
    """An export that cannot be made as asked (the message is for the person asking)."""


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
    form_class = import_string(CALL_FILTER_FORM)
    form = form_class(data, tenant=tenant)
    if not form.is_valid():
        problems = "; ".join(
            f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()
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


def start_export(
    request: HttpRequest,
    membership: Membership,
    export_format: str,
    *,
    call: CallSession | None = None,
    filters: dict[str, list[str]] | None = None,
) -> CallExport:
    """Record the export and its access log row, and queue the task once both are committed.

    The filters are checked here too, so a bad query is a message now, not a failed export.
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
        transaction.on_commit(lambda: _queue(export.pk))
    return export


def _queue(export_pk: int) -> None:
    # Imported here: the task module imports this one.
    from audit.tasks import run_export_task

    run_export_task.delay(export_pk)


# --- writing ---------------------------------------------------------------------------------


def records(calls: QuerySet[CallSession]) -> Iterator[dict[str, Any]]:
    """Each call's export record, reading CHUNK_SIZE calls (and their rows) per query."""
    chunked = (
        calls.order_by("started_at", "pk")
        .select_related(None)
        .prefetch_related(
            Prefetch("transcript", queryset=TranscriptItem.objects.order_by("sequence")),
            "tool_invocations",
        )
        .iterator(chunk_size=CHUNK_SIZE)
    )
    for call in chunked:
        invocations = sorted(
            call.tool_invocations.all(),  # type: ignore[attr-defined]  # reverse FK of tools
            key=lambda invocation: (invocation.created_at, invocation.pk),
        )
        timeline = build_timeline(call, call.transcript.all(), invocations)
        yield call_record(call, timeline, invocations)


def write_export(export_pk: int) -> CallExport:
    """Write the export's file; safe to run again (a redelivered task starts over)."""
    export = CallExport.objects.select_related("tenant").get(pk=export_pk)
    if export.status == ExportStatus.DONE:
        return export
    calls = selected_calls(export)
    total = calls.count()
    CallExport.objects.filter(pk=export.pk).update(
        status=ExportStatus.RUNNING, total=total, done=0, error=""
    )
    with tempfile.TemporaryFile() as raw:
        stream = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        writer = WRITERS[export.format](stream, export)
        for record in records(calls):
            writer.write(record)
            if writer.count % CHUNK_SIZE == 0:
                CallExport.objects.filter(pk=export.pk).update(done=writer.count)
        writer.finish()
        stream.flush()
        stream.detach()
        size = raw.tell()
        raw.seek(0)
        if export.file:
            export.file.delete(save=False)  # a rerun replaces what an earlier run left
        name = f"{export.public_id}.{EXTENSIONS[ExportFormat(export.format)]}"
        export.file.save(name, File(raw, name=name), save=False)
    CallExport.objects.filter(pk=export.pk).update(
        status=ExportStatus.DONE,
        done=writer.count,
        total=writer.count,
        file=export.file.name,
        size_bytes=size,
        finished_at=timezone.now(),
    )
    export.refresh_from_db()
    return export


def fail_export(export_pk: int, message: str) -> None:
    CallExport.objects.filter(pk=export_pk).exclude(status=ExportStatus.DONE).update(
        status=ExportStatus.FAILED, error=message, finished_at=timezone.now()
    )


def remove_expired_exports(now: datetime | None = None) -> int:
    """Delete the files of exports past their expiry; the rows stay, as a record."""
    removed = 0
    expired = CallExport.objects.filter(expires_at__lte=now or timezone.now()).exclude(file="")
    for export in expired.iterator(chunk_size=CHUNK_SIZE):
        export.file.delete(save=False)
        CallExport.objects.filter(pk=export.pk).update(file="")
        removed += 1
    return removed


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
