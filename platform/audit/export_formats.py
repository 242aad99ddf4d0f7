"""What an export file holds, and how each format writes it.

A call becomes one plain record (``call_record``): its metadata, its consent and, only where
the caller consented to a transcript, its turns and tool arguments; without that consent the
transcript is null and tool invocations carry no arguments or results. A phone call's
``end_user_ref`` is masked there when the export says so (``masks_phone_numbers``), so every
format writes the same masked value; transcripts are written as they are. A format writer
turns records into text one call at a time, so ``audit.exports`` can stream a set of any
size into a temporary file. Nothing here queries the database or touches storage.

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
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

from audit.models import CallExport, ExportFormat
from audit.timeline import EntryKind, TimelineEntry, format_offset
from calls.end_users import shown_end_user_ref
from calls.models import CallSession

# Each format's file name extension and content type (the download view serves them).
EXTENSIONS = {ExportFormat.JSON: "json", ExportFormat.CSV: "csv", ExportFormat.TEXT: "txt"}
CONTENT_TYPES = {
    ExportFormat.JSON: "application/json",
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.TEXT: "text/plain; charset=utf-8",
}


# --- what a call exports as ------------------------------------------------------------------


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
        "typed": entry.typed,
    }


def call_record(
    call: CallSession,
    timeline: list[TimelineEntry],
    invocations: Iterable[Any],
    *,
    masks_phone_numbers: bool,
) -> dict[str, Any]:
    """A call as exported: its metadata, consent and (where consented) its transcript;
    a phone call's number masked if ``masks_phone_numbers``."""
    return {
        "id": call.public_id,
        "agent": {"name": call.agent_name, "version": call.version_number},
        "channel": call.channel,
        "end_user_ref": shown_end_user_ref(call, masked=masks_phone_numbers),
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


# --- the format writers ----------------------------------------------------------------------


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
    "typed",
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
            "phone_numbers_masked": export.masks_phone_numbers,
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
                    "yes" if turn["typed"] else "",
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
            typed = " (typed)" if turn["typed"] else ""
            yield f"{stamp} {turn['speaker']}{typed}{latency}: {turn['text']}{interrupted}"


WRITERS: dict[str, Callable[[IO[str], CallExport], Writer]] = {
    ExportFormat.JSON: JsonWriter,
    ExportFormat.CSV: CsvWriter,
    ExportFormat.TEXT: TextWriter,
}
