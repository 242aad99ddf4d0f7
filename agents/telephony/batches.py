"""Batch calls: a list of numbers an agent rings, each inside a window of the callee's day.

``create_batch`` checks a whole list (errors by row: ``entries[3].to``) and stores it;
``parse_csv`` reads the dashboard's upload into the same list. Pausing, resuming and
cancelling are here too. The calls themselves are placed by ``batch_dispatch``, and each
entry settled as its call ends by ``batch_outcomes``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from zoneinfo import available_timezones

import orjson
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from agents.models import Agent
from agents.telephony.models import (
    DISPATCHED_BATCH_STATUSES,
    UNFINISHED_BATCH_STATUSES,
    BatchEntry,
    BatchStatus,
    CallBatch,
    EntryStatus,
    PhoneConsent,
    PhoneNumber,
)
from agents.telephony.outbound import MAX_METADATA_BYTES, outbound_problem
from foundation.api import InvalidRequest, field_errors
from foundation.phone_numbers import validate_e164
from tenancy.models import Tenant
from tenancy.scoping import for_tenant

MAX_ENTRIES = 5000
MAX_CSV_BYTES = 2 * 1024 * 1024
# Past this many rows with errors, the rest are counted, not listed.
MAX_LISTED_ERRORS = 50
MAX_END_USER_LENGTH = 200
# The CSV columns with a meaning; any other column goes into the entry's metadata.
CSV_COLUMNS = ("to", "end_user", "time_zone")
# Spreadsheets show numbers grouped ("+1 415-555-0123"): spaces and hyphens only group.
NUMBER_GROUPING = re.compile(r"[\s\-]")
# The API's names for the model's fields.
FIELD_NAMES = {"window_start": "window.start", "window_end": "window.end"}


@dataclass(frozen=True)
class EntrySpec:
    to: str
    end_user: str = ""
    time_zone: str = ""  # empty: the batch's
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchSpec:
    agent_id: str
    from_number: str
    name: str
    window_start: time
    window_end: time
    entries: Sequence[EntrySpec]
    time_zone: str = ""  # empty: the tenant's
    concurrency: int = 5
    max_attempts: int = 3
    retry_delay_minutes: int = 60
    starts_at: datetime | None = None


class BatchStateError(Exception):
    """The batch cannot make this change in its state (e.g. resume a completed batch)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- creating ---------------------------------------------------------------------------------


def create_batch(tenant: Tenant, spec: BatchSpec) -> CallBatch:
    """Check the batch and every entry, then store them; InvalidRequest names each fault."""
    errors: dict[str, list[str]] = {}
    agent, number = _agent_and_number(tenant, spec.agent_id.strip(), spec.from_number, errors)
    now = timezone.now()
    batch = CallBatch(
        tenant=tenant,
        agent=agent,
        phone_number=number,
        name=spec.name.strip(),
        window_start=spec.window_start,
        window_end=spec.window_end,
        time_zone=spec.time_zone.strip() or tenant.time_zone,
        concurrency=spec.concurrency,
        max_attempts=spec.max_attempts,
        retry_delay_minutes=spec.retry_delay_minutes,
        starts_at=spec.starts_at or now,
        created_at=now,
    )
    try:
        # The constraints repeat the fields' validators and clean(), which name the field.
        batch.full_clean(exclude=["tenant", "agent", "phone_number"], validate_constraints=False)
    except ValidationError as error:
        for name, messages in field_errors(error, FIELD_NAMES).items():
            errors.setdefault(name, []).extend(messages)
    if spec.starts_at is not None and timezone.is_naive(spec.starts_at):
        errors["starts_at"] = ["Give the time's offset, e.g. 2026-05-04T09:00:00+02:00."]
    entries = [
        EntrySpec(
            to=entry.to.strip(),
            end_user=entry.end_user.strip(),
            time_zone=entry.time_zone.strip(),
            metadata=entry.metadata,
        )
        for entry in spec.entries
    ]
    if not entries:
        errors["entries"] = ["Give at least one number to call."]
    elif len(entries) > MAX_ENTRIES:
        errors["entries"] = [f"At most {MAX_ENTRIES} numbers a batch: split the list."]
    else:
        errors.update(entry_errors(entries))
    if errors:
        raise InvalidRequest(errors)
    with transaction.atomic():
        batch.save()
        BatchEntry.objects.bulk_create(
            [
                BatchEntry(
                    batch=batch,
                    position=position,
                    to=entry.to,
                    end_user=entry.end_user,
                    metadata=entry.metadata,
                    time_zone=entry.time_zone or batch.time_zone,
                    next_attempt_at=batch.starts_at,
                    updated_at=now,
                )
                for position, entry in enumerate(entries)
            ],
            batch_size=500,
        )
    return batch


def _agent_and_number(
    tenant: Tenant, agent_id: str, from_number: str, errors: dict[str, list[str]]
) -> tuple[Agent | None, PhoneNumber | None]:
    # The rules place_call applies to each call, checked once for the whole batch.
    agent = for_tenant(Agent, tenant).filter(public_id=agent_id).first() if agent_id else None
    if agent is None:
        errors["agent"] = [f"No agent {agent_id!r} in this tenant."]
    elif agent.current_version_id is None:
        errors["agent"] = ["This agent has no saved configuration yet."]
    number = (
        for_tenant(PhoneNumber, tenant)
        .select_related("carrier_account")
        .filter(number=from_number.strip())
        .first()
    )
    if number is None:
        errors["from"] = ["Not one of this tenant's phone numbers."]
    elif problem := outbound_problem(number):
        errors["from"] = [problem]
    elif agent is not None and agent.consent_required and number.consent == PhoneConsent.NONE:
        errors["from"] = [
            "This agent takes calls only with consent: use a number whose consent is 'disclosed'."
        ]
    return agent, number


def entry_errors(entries: Sequence[EntrySpec]) -> dict[str, list[str]]:
    """Each entry's faults, named ``entries[i].<field>``; the first MAX_LISTED_ERRORS rows."""
    zones = available_timezones()  # read once: it scans the time zone database
    errors: dict[str, list[str]] = {}
    seen: set[str] = set()
    faulty_rows = 0
    for index, entry in enumerate(entries):
        row: dict[str, list[str]] = {}
        try:
            validate_e164(entry.to)
        except ValidationError as error:
            row["to"] = list(error.messages)
        else:
            if entry.to in seen:
                row["to"] = [f"{entry.to} is already in the list: a number is called once."]
            seen.add(entry.to)
        if len(entry.end_user) > MAX_END_USER_LENGTH:
            row["end_user"] = [f"At most {MAX_END_USER_LENGTH} characters."]
        if entry.time_zone and entry.time_zone not in zones:
            row["time_zone"] = [f"{entry.time_zone} is not an IANA time zone (e.g. Europe/Paris)."]
        if len(orjson.dumps(entry.metadata)) > MAX_METADATA_BYTES:
            row["metadata"] = [f"At most {MAX_METADATA_BYTES} bytes of JSON."]
        if row:
            faulty_rows += 1
            if faulty_rows <= MAX_LISTED_ERRORS:
                errors.update({f"entries[{index}].{name}": text for name, text in row.items()})
    if faulty_rows > MAX_LISTED_ERRORS:
        hidden = faulty_rows - MAX_LISTED_ERRORS
        errors["entries"] = [f"{hidden} more entries have errors; fix those listed first."]
    return errors


# --- CSV (the dashboard's upload) -------------------------------------------------------------


class CsvError(Exception):
    """The file cannot be read as a list of entries; each message names its row."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


@dataclass(frozen=True)
class CsvEntries:
    entries: list[EntrySpec]
    rows: list[int]  # each entry's row in the file (row 1 names the columns)


def parse_csv(text: str) -> CsvEntries:
    """Entries from CSV whose first row names the columns: ``to`` (required), ``end_user``,
    ``time_zone``; any other column goes into each entry's metadata. Commas, semicolons
    (European spreadsheets) or tabs separate the cells."""
    text = text.removeprefix("\ufeff")  # the byte-order mark Excel writes
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        columns = _columns(next(reader, []))
        entries: list[EntrySpec] = []
        rows: list[int] = []
        errors: list[str] = []
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue  # blank lines, which spreadsheets often leave at the end
            if len(entries) >= MAX_ENTRIES:
                raise CsvError(
                    [f"The file has more than {MAX_ENTRIES} rows: split it into several batches."]
                )
            if len(record) > len(columns):
                errors.append(
                    f"Row {reader.line_num}: {len(record)} cells, but row 1 names "
                    f"{len(columns)} columns."
                )
                continue
            # Cells missing at the end of a row are empty.
            cells = dict(zip(columns, (cell.strip() for cell in record), strict=False))
            entries.append(
                EntrySpec(
                    to=NUMBER_GROUPING.sub("", cells.get("to", "")),
                    end_user=cells.get("end_user", ""),
                    time_zone=cells.get("time_zone", ""),
                    metadata={
                        name: value
                        for name, value in cells.items()
                        if name not in CSV_COLUMNS and value
                    },
                )
            )
            rows.append(reader.line_num)
    except csv.Error as error:
        raise CsvError([f"Row {reader.line_num}: {error}."]) from error
    if errors:
        raise CsvError(errors[:MAX_LISTED_ERRORS])
    if not entries:
        raise CsvError(["The file has no rows under the one naming the columns."])
    return CsvEntries(entries, rows)


def _columns(header: list[str]) -> list[str]:
    columns = [name.strip() for name in header]
    # The known columns are matched whatever their case; others keep theirs (metadata keys).
    columns = [name.lower() if name.lower() in CSV_COLUMNS else name for name in columns]
    if "to" not in columns:
        raise CsvError(
            [
                "Row 1 must name the columns, one of them “to” (the number to call); "
                "optional: end_user, time_zone, and any others (kept as metadata)."
            ]
        )
    errors = [f"Row 1: column {index + 1} has no name." for index, n in enumerate(columns) if not n]
    errors += [f"Row 1: the column “{name}” appears twice." for name in _repeated(columns)]
    if errors:
        raise CsvError(errors)
    return columns


def _repeated(names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    repeated = []
    for name in names:
        if name and name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated


# --- pausing, resuming, cancelling ------------------------------------------------------------


def pause_batch(batch: CallBatch) -> CallBatch:
    """No new calls until resumed; calls under way go on (pausing twice changes nothing)."""
    with transaction.atomic():
        locked = _locked(batch)
        if locked.status in DISPATCHED_BATCH_STATUSES:
            locked.status = BatchStatus.PAUSED
            locked.save(update_fields=["status", "updated_at"])
        elif locked.status != BatchStatus.PAUSED:
            raise BatchStateError(f"The batch is {locked.status}: it cannot be paused.")
    return locked


def resume_batch(batch: CallBatch) -> CallBatch:
    """Calls start again at the next dispatch (resuming a running batch changes nothing)."""
    with transaction.atomic():
        locked = _locked(batch)
        if locked.status == BatchStatus.PAUSED:
            is_due = locked.starts_at <= timezone.now()
            locked.status = BatchStatus.RUNNING if is_due else BatchStatus.SCHEDULED
            locked.last_error = ""
            locked.save(update_fields=["status", "last_error", "updated_at"])
        elif locked.status not in DISPATCHED_BATCH_STATUSES:
            raise BatchStateError(f"The batch is {locked.status}: it cannot be resumed.")
    return locked


def cancel_batch(batch: CallBatch) -> CallBatch:
    """No more calls: pending entries are cancelled; calls under way go on to their end."""
    with transaction.atomic():
        locked = _locked(batch)
        if locked.status in UNFINISHED_BATCH_STATUSES:
            locked.status = BatchStatus.CANCELLED
            locked.completed_at = timezone.now()
            locked.save(update_fields=["status", "completed_at", "updated_at"])
            locked.entries.filter(status=EntryStatus.PENDING).update(
                status=EntryStatus.CANCELLED, updated_at=locked.completed_at
            )
        elif locked.status != BatchStatus.CANCELLED:
            raise BatchStateError(f"The batch is {locked.status}: it cannot be cancelled.")
    return locked


def _locked(batch: CallBatch) -> CallBatch:
    # Waits for a dispatcher claiming entries of this batch, so that a cancel cannot
    # interleave with a claim.
    return (
        CallBatch.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=batch.pk)
    )


# --- progress ---------------------------------------------------------------------------------


def entry_counts(batch_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """Each batch's entries by status (every status present, zeros included)."""
    counts = {batch_id: dict.fromkeys(EntryStatus.values, 0) for batch_id in batch_ids}
    grouped = (
        BatchEntry.objects.filter(batch_id__in=counts)
        .order_by()
        .values_list("batch_id", "status")
        .annotate(count=Count("pk"))
    )
    for batch_id, status, count in grouped:
        counts[batch_id][status] = count
    return counts
