"""REST API v1 for batch calls: an agent rings a list of numbers (``/v1/batches``).

A batch answers at once (``201``) with its id and counts; its calls are placed in the
background, inside the window of each callee's day, and each entry's progress shows on
``GET /v1/batches/{id}/entries``. Pause, resume and cancel are ``POST`` actions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema, Status

from agents.telephony.batches import (
    BatchSpec,
    BatchStateError,
    EntrySpec,
    cancel_batch,
    create_batch,
    entry_counts,
    pause_batch,
    resume_batch,
)
from agents.telephony.models import BatchEntry, CallBatch, EntryStatus
from agents.telephony.tasks import dispatch_soon
from foundation.api import Pagination, error_response, error_responses, page, request_tenant
from tenancy.scoping import for_tenant, get_for_tenant_or_404

router = Router(tags=["batch calls"])


class Window(Schema):
    start: time = Field(description="Calls start from this local time of day, e.g. 09:00.")
    end: time = Field(description="No call starts from this time on, e.g. 18:00.")


class EntryIn(Schema):
    to: str = Field(description="The number to ring, E.164.")
    end_user: str = Field("", description="Your reference for the callee; default: `to`.")
    time_zone: str = Field("", description="The callee's IANA time zone; default: the batch's.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Kept with its calls.")


class BatchCreate(Schema):
    agent: str = Field(description="The agent that talks.")
    from_: str = Field(alias="from", description="One of the tenant's Twilio numbers, E.164.")
    name: str
    window: Window = Field(description="When in each callee's day calls may start.")
    time_zone: str = Field("", description="Callees' IANA time zone; default: the tenant's.")
    concurrency: int = Field(5, description="At most this many calls at once (1-50).")
    max_attempts: int = Field(3, description="Calls per number at most (1-5).")
    retry_delay_minutes: int = Field(60, description="Wait after no answer, busy or failure.")
    starts_at: datetime | None = Field(None, description="No calls before; default: now.")
    entries: list[EntryIn] = Field(description="The numbers to ring, each once (up to 5000).")


class BatchOut(Schema):
    id: str
    name: str
    status: str = Field(description="scheduled, running, paused, completed, cancelled")
    agent: str | None
    from_: str | None = Field(alias="from")
    window: Window
    time_zone: str
    concurrency: int
    max_attempts: int
    retry_delay_minutes: int
    starts_at: datetime
    counts: dict[str, int] = Field(description="Entries by status.")
    total: int
    last_error: str | None = Field(description="Why the batch waits or was paused.")
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class BatchList(Schema):
    items: list[BatchOut]
    count: int
    limit: int
    offset: int


class EntryOut(Schema):
    index: int = Field(description="Its place in the list the batch was created with.")
    to: str
    end_user: str
    time_zone: str
    metadata: dict[str, Any]
    status: str = Field(
        description="pending, calling, completed, no_answer, busy, failed, cancelled"
    )
    attempts: int
    next_attempt_at: datetime | None = Field(description="When a pending entry is due.")
    last_status: str | None = Field(description="The carrier's status of its last call.")
    last_error: str | None
    phone_call: str | None = Field(description="Its last call (GET /v1/calls/{id}).")
    updated_at: datetime


class EntryList(Schema):
    items: list[EntryOut]
    count: int
    limit: int
    offset: int


def batch_json(batch: CallBatch, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": batch.public_id,
        "name": batch.name,
        "status": batch.status,
        "agent": batch.agent.public_id if batch.agent else None,
        "from": batch.phone_number.number if batch.phone_number else None,
        "window": {"start": batch.window_start, "end": batch.window_end},
        "time_zone": batch.time_zone,
        "concurrency": batch.concurrency,
        "max_attempts": batch.max_attempts,
        "retry_delay_minutes": batch.retry_delay_minutes,
        "starts_at": batch.starts_at,
        "counts": counts,
        "total": sum(counts.values()),
        "last_error": batch.last_error or None,
        "created_at": batch.created_at,
        "updated_at": batch.updated_at,
        "completed_at": batch.completed_at,
    }


def entry_json(entry: BatchEntry) -> dict[str, Any]:
    return {
        "index": entry.position,
        "to": entry.to,
        "end_user": entry.end_user,
        "time_zone": entry.time_zone,
        "metadata": entry.metadata,
        "status": entry.status,
        "attempts": entry.attempts,
        "next_attempt_at": entry.next_attempt_at if entry.status == EntryStatus.PENDING else None,
        "last_status": entry.last_status or None,
        "last_error": entry.last_error or None,
        "phone_call": entry.last_phone_call.public_id if entry.last_phone_call else None,
        "updated_at": entry.updated_at,
    }


def _batches(request: HttpRequest) -> Any:
    return for_tenant(CallBatch, request_tenant(request)).select_related("agent", "phone_number")


def _batch_or_404(request: HttpRequest, batch_id: str) -> CallBatch:
    return get_for_tenant_or_404(_batches(request), request_tenant(request), public_id=batch_id)


def _answer(request: HttpRequest, batch: CallBatch) -> dict[str, Any]:
    batch = _batches(request).get(pk=batch.pk)  # as the dispatch may have left it
    return batch_json(batch, entry_counts([batch.pk])[batch.pk])


@router.post(
    "/batches",
    response={201: BatchOut, **error_responses(400)},
    by_alias=True,
    summary="Create a batch: the agent rings a list of numbers",
)
def create(request: HttpRequest, body: BatchCreate) -> Status[Any]:
    spec = BatchSpec(
        agent_id=body.agent,
        from_number=body.from_,
        name=body.name,
        window_start=body.window.start,
        window_end=body.window.end,
        time_zone=body.time_zone,
        concurrency=body.concurrency,
        max_attempts=body.max_attempts,
        retry_delay_minutes=body.retry_delay_minutes,
        starts_at=body.starts_at,
        entries=[
            EntrySpec(entry.to, entry.end_user, entry.time_zone, entry.metadata)
            for entry in body.entries
        ],
    )
    batch = create_batch(request_tenant(request), spec)
    dispatch_soon(batch)
    return Status(201, _answer(request, batch))


@router.get(
    "/batches",
    response={200: BatchList, **error_responses(400)},
    by_alias=True,
    summary="List batches, newest first",
)
def list_batches(request: HttpRequest, pagination: Query[Pagination]) -> dict[str, Any]:
    batches, count = page(_batches(request).order_by("-created_at", "-pk"), pagination)
    counts = entry_counts(batch.pk for batch in batches)
    return {
        "items": [batch_json(batch, counts[batch.pk]) for batch in batches],
        "count": count,
        "limit": pagination.limit,
        "offset": pagination.offset,
    }


@router.get(
    "/batches/{batch_id}",
    response={200: BatchOut, **error_responses(404)},
    by_alias=True,
    summary="Get a batch and its entries' counts by status",
)
def get_batch(request: HttpRequest, batch_id: str) -> dict[str, Any]:
    return _answer(request, _batch_or_404(request, batch_id))


@router.get(
    "/batches/{batch_id}/entries",
    response={200: EntryList, **error_responses(400, 404)},
    summary="List a batch's entries in their order",
)
def list_entries(
    request: HttpRequest,
    batch_id: str,
    pagination: Query[Pagination],
    status: EntryStatus | None = None,
) -> dict[str, Any]:
    batch = _batch_or_404(request, batch_id)
    entries = batch.entries.select_related("last_phone_call").order_by("position")
    if status is not None:
        entries = entries.filter(status=status)
    items, count = page(entries, pagination)
    return {
        "items": [entry_json(entry) for entry in items],
        "count": count,
        "limit": pagination.limit,
        "offset": pagination.offset,
    }


def _change(
    request: HttpRequest, batch_id: str, action: Callable[[CallBatch], CallBatch]
) -> dict[str, Any] | HttpResponse:
    batch = _batch_or_404(request, batch_id)
    try:
        batch = action(batch)
    except BatchStateError as refused:
        return error_response(request, 409, refused.message, code="invalid_batch_state")
    return _answer(request, batch)


@router.post(
    "/batches/{batch_id}/pause",
    response={200: BatchOut, **error_responses(404, 409)},
    by_alias=True,
    summary="Pause a batch: no new calls until resumed (calls under way go on)",
)
def pause(request: HttpRequest, batch_id: str) -> dict[str, Any] | HttpResponse:
    return _change(request, batch_id, pause_batch)


@router.post(
    "/batches/{batch_id}/resume",
    response={200: BatchOut, **error_responses(404, 409)},
    by_alias=True,
    summary="Resume a paused batch",
)
def resume(request: HttpRequest, batch_id: str) -> dict[str, Any] | HttpResponse:
    def resume_and_dispatch(batch: CallBatch) -> CallBatch:
        resumed = resume_batch(batch)
        dispatch_soon(resumed)
        return resumed

    return _change(request, batch_id, resume_and_dispatch)


@router.post(
    "/batches/{batch_id}/cancel",
    response={200: BatchOut, **error_responses(404, 409)},
    by_alias=True,
    summary="Cancel a batch: its pending numbers are not called (calls under way go on)",
)
def cancel(request: HttpRequest, batch_id: str) -> dict[str, Any] | HttpResponse:
    return _change(request, batch_id, cancel_batch)
