"""Dashboard pages for calls: the list, one call's record and transcript, ending a live call."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from agents.models import Agent
from billing.pricing import CostBreakdown
from billing.settlement import breakdown_of
from calls.control import EndOutcome, is_stale, request_call_end
from calls.models import (
    CallSession,
    CallStatus,
    TranscriptItem,
    TranscriptRole,
    UsageRecord,
)
from dashboard.access import require, tenant_view
from tenancy.models import Membership
from tenancy.roles import Permission
from tenancy.scoping import for_tenant, get_for_tenant_or_404

logger = logging.getLogger(__name__)

CALLS_PER_PAGE = 50
USAGE_COLUMNS = (
    "input_text_tokens",
    "input_audio_tokens",
    "cached_tokens",
    "output_text_tokens",
    "output_audio_tokens",
    "total_tokens",
)

# The call page's cost rows, in the order of the usage table above them.
COST_KINDS = (
    ("text_input", "Text input"),
    ("cached_text_input", "Cached text input"),
    ("text_output", "Text output"),
    ("audio_input", "Audio input"),
    ("cached_audio_input", "Cached audio input"),
    ("audio_output", "Audio output"),
    ("image_input", "Image input"),
    ("cached_image_input", "Cached image input"),
)


@dataclass(frozen=True)
class LatencySummary:
    count: int
    average_ms: int
    p95_ms: int


@dataclass(frozen=True)
class CallRow:
    """A call as the list shows it."""

    call: CallSession
    duration: str
    is_stale: bool


@dataclass(frozen=True)
class TranscriptLine:
    """A transcript item with its tool arguments and result ready to read."""

    item: TranscriptItem
    arguments: str
    result: str


def latency_summary(latencies_ms: Iterable[Any]) -> LatencySummary | None:
    """Count, mean and 95th percentile (nearest rank) of a call's per-turn latencies."""
    # The list is JSON written by the broker: skip anything that is not a sane number.
    values = sorted(
        int(value)
        for value in latencies_ms
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    )
    if not values:
        return None
    rank = math.ceil(0.95 * len(values))
    return LatencySummary(
        count=len(values),
        average_ms=round(sum(values) / len(values)),
        p95_ms=values[rank - 1],
    )


def format_duration(duration_ms: int | None) -> str:
    """Milliseconds as mm:ss (minutes keep counting past an hour); an em dash when unknown."""
    if duration_ms is None:
        return "—"
    minutes, seconds = divmod(duration_ms // 1000, 60)
    return f"{minutes:02d}:{seconds:02d}"


def pretty_json(text: str) -> str:
    """Tool arguments and results indented when they are JSON, else as they came."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def cost_rows(breakdown: CostBreakdown) -> list[tuple[str, Decimal]]:
    """(label, dollars) of each token kind the call paid for."""
    amounts = breakdown.as_dict()
    return [(label, amounts[name]) for name, label in COST_KINDS if amounts[name]]


def usage_totals(records: Iterable[UsageRecord]) -> dict[str, int]:
    totals = dict.fromkeys(USAGE_COLUMNS, 0)
    for record in records:
        for column in USAGE_COLUMNS:
            totals[column] += getattr(record, column)
    return totals


@tenant_view()
def call_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    calls = for_tenant(CallSession, membership.tenant).select_related("agent")
    agent_filter = request.GET.get("agent", "")
    status_filter = request.GET.get("status", "")
    if agent_filter:
        calls = calls.filter(agent__public_id=agent_filter)
    if status_filter in CallStatus.values:
        calls = calls.filter(status=status_filter)
    else:
        status_filter = ""
    paginator = Paginator(calls.order_by("-started_at", "-pk"), CALLS_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    now = timezone.now()
    rows = [CallRow(call, format_duration(call.duration_ms), is_stale(call, now)) for call in page]
    is_filtered = bool(agent_filter or status_filter)
    # Tell "no calls yet" apart from "no call matches", which need different advice.
    has_calls = bool(page.object_list) or (
        is_filtered and for_tenant(CallSession, membership.tenant).exists()
    )
    agents = for_tenant(Agent, membership.tenant).order_by("name").only("public_id", "name")
    return render(
        request,
        "dashboard/calls/list.html",
        {
            "nav": "calls",
            "page": page,
            "rows": rows,
            "has_calls": has_calls,
            "is_filtered": is_filtered,
            "agents": agents,
            "agent_filter": agent_filter,
            "status_filter": status_filter,
            "statuses": CallStatus.choices,
        },
    )


@tenant_view()
def call_detail(request: HttpRequest, membership: Membership, call_id: str) -> HttpResponse:
    call = _call_or_404(membership, call_id)
    # Without transcript consent nothing is read, even rows that should not exist.
    transcript = (
        [
            TranscriptLine(
                item,
                arguments=pretty_json(item.tool_arguments),
                result=pretty_json(item.text) if item.role == TranscriptRole.TOOL else "",
            )
            for item in call.transcript.all()
        ]
        if call.stores_transcript
        else []
    )
    usage_records = list(call.usage.order_by("created_at", "pk"))
    tool_invocations = list(
        call.tool_invocations.select_related("tool").order_by("created_at", "pk")
    )
    # Until the call is settled its cost is unknown; after, each response's price is kept.
    breakdown = breakdown_of(call) if call.cost is not None else None
    return render(
        request,
        "dashboard/calls/detail.html",
        {
            "nav": "calls",
            "call": call,
            "duration_display": format_duration(call.duration_ms),
            "is_stale": is_stale(call),
            "transcript": transcript,
            "latency": latency_summary(call.latencies_ms or []),
            "usage_records": usage_records,
            "usage_totals": usage_totals(usage_records),
            "cost_rows": cost_rows(breakdown) if breakdown is not None else [],
            "cost_breakdown": breakdown,
            "unpriced_count": sum(1 for record in usage_records if record.price_id is None),
            "tool_invocations": tool_invocations,
        },
    )


@require_POST
@tenant_view()
def call_end(request: HttpRequest, membership: Membership, call_id: str) -> HttpResponse:
    call = _call_or_404(membership, call_id)
    require(membership, Permission.EDIT)
    user = membership.user
    outcome = request_call_end(call, user.email or user.get_username())
    if outcome == EndOutcome.ALREADY_ENDED:
        messages.info(request, "This call has already ended.")
    elif outcome == EndOutcome.ENDED_STALE:
        messages.success(
            request,
            "Ending the call… Its process was no longer running, so it is now marked as ended.",
        )
    elif outcome == EndOutcome.UNREACHABLE:
        messages.error(request, "Could not reach the live call right now. Try again in a moment.")
    else:
        messages.success(request, "Ending the call…")
    return redirect("dashboard:call_detail", call_id=call.public_id)


def _call_or_404(membership: Membership, call_id: str) -> CallSession:
    calls = CallSession.objects.select_related("agent")
    return get_for_tenant_or_404(calls, membership.tenant, public_id=call_id)
