"""Call exports: one call or a filtered set, as JSON, CSV or a plain-text transcript.

An export is a ``CallExport`` row written by a Celery task (``audit.tasks``). The task
reads the calls in chunks (``.iterator(chunk_size=...)`` with their transcript prefetched
per chunk), writes each call to a temporary file as it goes and hands the finished file to
Django's default storage, so a set of any size never sits in memory. Only what the call's
consent let the platform keep exists to export: without transcript consent a call exports
its metadata (times, usage, consent) and no transcript text and no tool arguments.

Formats:

- ``json``: one document, ``{"export": {...}, "calls": [{...}, ...]}``; a call's
  ``transcript`` is null without transcript consent and a list of turns otherwise.
- ``csv``: one row per turn (caller, agent, tool call, tool result) with the call's
  metadata repeated on each row; a call without turns has one row with empty turn columns.
  Cells that a spreadsheet would run as a formula are prefixed with ``'``.
- ``txt``: the transcript as people read it, one block per call, blocks separated by a
  line of ``=``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from django.core import signing
from django.core.files import File
from django.db import transaction
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, QueryDict
from django.utils import timezone
from django.utils.module_loading import import_string

from audit.log import record_access
from audit.models import AccessAction, CallExport, ExportFormat, ExportStatus
from audit.timeline import EntryKind, TimelineEntry, build_timeline, format_offset
from calls.models import CallSession, TranscriptItem
from tenancy.models import Membership, Tenant
from tenancy.scoping import for_tenant

logger = logging.getLogger(__name__)

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

EXTENSIONS = {ExportFormat.JSON: "json", ExportFormat.CSV: "csv", ExportFormat.TEXT: "txt"}
CONTENT_TYPES = {
    ExportFormat.JSON: "application/json",
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.TEXT: "text/plain; charset=utf-8",
}


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


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def invocation_record(invocation: Any, has_consent: bool) -> dict[str, Any]:
    record = {
        "id": invocation.public_id,
        "tool_name": invocation.tool_name,
        "status": invocation.status,
        "error_code": invocation.error_code,
        "execution": invocation.execution,
        "attempts": invocation.attempts,
        "duration_ms": invocation.duration_ms,
        "delivery": invocation.delivery,
        "created_at": iso(invocation.created_at),
        "finished_at": iso(invocation.finished_at),
    }
    if has_consent and invocation.stores_content:
        record["arguments"] = invocation.arguments
        record["result"] = invocation.result
    return record


def turn_record(entry: TimelineEntry) -> dict[str, Any]:
    return {
        "sequence": entry.sequence,
        "offset_ms": entry.offset_ms,
        "kind": entry.kind,
        "speaker": entry.speaker,
        "text": entry.text,
        "tool_name": entry.tool_name,
        "tool_arguments": entry.arguments,
        "latency_ms": entry.latency_ms,
        "interrupted": entry.interrupted,
    }


def call_record(
    call: CallSession, timeline: list[TimelineEntry], invocations: Iterable[Any]
) -> dict[str, Any]:
    """A call as exported: its metadata, consent and (where consented) its transcript."""
    return {
        "id": call.public_id,
        "agent": {"name": call.agent_name, "version": call.version_number},
        "channel": call.channel,
        "end_user_ref": call.end_user_ref,
        "provider": call.provider,
        "model": call.model,
        "status": call.status,
        "started_at": iso(call.started_at),
        "ended_at": iso(call.ended_at),
        "duration_ms": call.duration_ms,
        "end_reason": call.end_reason,
        "end_detail": call.end_detail,
        "turn_count": call.turn_count,
        "latencies_ms": call.latencies_ms,
        "tokens": {
            "input": call.input_tokens,
            "output": call.output_tokens,
            "total": call.total_tokens,
        },
        "cost": str(call.cost) if call.cost is not None else None,
        "billed_amount": str(call.billed_amount) if call.billed_amount is not None else None,
        "consent": {
            "scope": call.consent_scope,
            "method": call.consent_method,
            "at": iso(call.consent_at),
            "version": call.consent_version,
            "text": call.consent_text,
        },
        "legal_hold": {
            "on": call.legal_hold,
            "changed_at": iso(call.legal_hold_at),
            "changed_by": call.legal_hold_by,
        },
        "transcript_removed_at": iso(call.transcript_purged_at),
        "recording_removed_at": iso(call.recording_purged_at),
        "transcript": [turn_record(entry) for entry in timeline]
        if call.stores_transcript
        else None,
        "tool_invocations": [
            invocation_record(invocation, call.stores_transcript) for invocation in invocations
        ],
    }


def neutralize_formula(value: Any) -> Any:
    """A cell a spreadsheet would run as a formula, made text (OWASP's CSV injection advice)."""
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


CSV_CALL_COLUMNS = [
    "call_id",
    "started_at",
    "ended_at",
    "agent",
    "agent_version",
    "channel",
    "end_user_ref",
    "duration_ms",
    "end_reason",
    "end_detail",
    "consent_scope",
    "consent_method",
    "consent_version",
    "consent_at",
    "legal_hold",
    "transcript_removed_at",
]
CSV_TURN_COLUMNS = [
    "sequence",
    "offset_ms",
    "speaker",
    "text",
    "tool_name",
    "tool_arguments",
    "latency_ms",
    "interrupted",
]


class Writer:
    """Writes calls to a text stream one at a time; ``finish`` closes the document."""

    def __init__(self, stream: IO[str], export: CallExport) -> None:
        self.stream = stream
        self.export = export
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Most formats need no closing."""


class JsonWriter(Writer):
    def __init__(self, stream: IO[str], export: CallExport) -> None:
        super().__init__(stream, export)
        header = {
            "id": export.public_id,
            "tenant": export.tenant.name,
            "requested_by": export.requested_by_name,
            "created_at": iso(export.created_at),
            "params": export.params,
        }
        stream.write('{"export": ' + json.dumps(header, ensure_ascii=False) + ', "calls": [')

    def write(self, record: dict[str, Any]) -> None:
        self.stream.write(("," if self.count else "") + "\n")
        self.stream.write(json.dumps(record, ensure_ascii=False))
        self.count += 1

    def finish(self) -> None:
        self.stream.write("\n]}\n")


class CsvWriter(Writer):
    def __init__(self, stream: IO[str], export: CallExport) -> None:
        super().__init__(stream, export)
        self.csv = csv.writer(stream)
        self.csv.writerow(CSV_CALL_COLUMNS + CSV_TURN_COLUMNS)

    def write(self, record: dict[str, Any]) -> None:
        call_cells = [
            record["id"],
            record["started_at"],
            record["ended_at"],
            record["agent"]["name"],
            record["agent"]["version"],
            record["channel"],
            record["end_user_ref"],
            record["duration_ms"],
            record["end_reason"],
            record["end_detail"],
            record["consent"]["scope"],
            record["consent"]["method"],
            record["consent"]["version"],
            record["consent"]["at"],
            "yes" if record["legal_hold"]["on"] else "no",
            record["transcript_removed_at"],
        ]
        turns = record["transcript"] or [None]
        for turn in turns:
            turn_cells = (
                [
                    turn["sequence"],
                    turn["offset_ms"],
                    turn["speaker"],
                    turn["text"],
                    turn["tool_name"],
                    turn["tool_arguments"],
                    turn["latency_ms"],
                    "yes" if turn["interrupted"] else "",
                ]
                if turn
                else [""] * len(CSV_TURN_COLUMNS)
            )
            cells = call_cells + turn_cells
            self.csv.writerow(["" if cell is None else neutralize_formula(cell) for cell in cells])
        self.count += 1


class TextWriter(Writer):
    SEPARATOR = "=" * 72

    def write(self, record: dict[str, Any]) -> None:
        if self.count:
            self.stream.write(f"\n{self.SEPARATOR}\n\n")
        self.stream.writelines(line + "\n" for line in transcript_lines(record))
        self.count += 1


def transcript_lines(record: dict[str, Any]) -> Iterator[str]:
    """A call as a person reads it: a header, then one line (or block) per turn."""
    consent = record["consent"]
    yield f"Call {record['id']}"
    yield f"Agent: {record['agent']['name']} (version {record['agent']['version']})"
    if record["end_user_ref"]:
        yield f"End user: {record['end_user_ref']}"
    yield f"Started: {record['started_at']}"
    yield f"Ended: {record['ended_at'] or 'not yet'}"
    if record["end_reason"]:
        yield f"End reason: {record['end_reason']} {record['end_detail']}".rstrip()
    consent_line = f"Consent: {consent['scope']}"
    if consent["method"]:
        consent_line += f", given by {consent['method']}"
    if consent["version"] is not None:
        consent_line += f", prompt version {consent['version']}"
    if consent["at"]:
        consent_line += f", at {consent['at']}"
    yield consent_line
    if consent["text"]:
        yield f"Consent prompt: {consent['text']}"
    if record["legal_hold"]["on"]:
        hold = record["legal_hold"]
        yield f"Legal hold: on (set by {hold['changed_by']} at {hold['changed_at']})"
    yield ""
    if record["transcript"] is None:
        yield "No transcript: the caller did not consent to storing one."
        return
    if record["transcript_removed_at"]:
        yield f"Transcript removed by retention policy on {record['transcript_removed_at']}."
        return
    if not record["transcript"]:
        yield "Nothing was said."
        return
    for turn in record["transcript"]:
        stamp = f"[{format_offset(turn['offset_ms'])}]"
        if turn["kind"] == EntryKind.TOOL_CALL:
            yield f"{stamp} Tool call {turn['tool_name']}: {turn['tool_arguments']}"
        elif turn["kind"] == EntryKind.TOOL_RESULT:
            yield f"{stamp} Tool result {turn['tool_name']}: {turn['text']}"
        else:
            latency = f" ({turn['latency_ms']} ms)" if turn["latency_ms"] is not None else ""
            interrupted = " [interrupted by the caller]" if turn["interrupted"] else ""
            yield f"{stamp} {turn['speaker']}{latency}: {turn['text']}{interrupted}"


WRITERS: dict[str, Callable[[IO[str], CallExport], Writer]] = {
    ExportFormat.JSON: JsonWriter,
    ExportFormat.CSV: CsvWriter,
    ExportFormat.TEXT: TextWriter,
}


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
