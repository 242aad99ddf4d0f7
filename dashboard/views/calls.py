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
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from audit.holds import change_legal_hold
from audit.log import record_access
from audit.models import AccessAction, ExportFormat
from audit.timeline import build_timeline
from billing.pricing import CostBreakdown
from billing.settlement import breakdown_of
from calls.control import EndOutcome, is_stale, lost_instance_names, request_call_end
from calls.models import CallSession, UsageRecord
from calls.search import snippets
from dashboard.access import require, tenant_view
from dashboard.forms.calls import CallFilterForm
from dashboard.pagination import list_page
from dashboard.views.recordings import recording_panel
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
    tenant = membership.tenant
    form = CallFilterForm(request.GET, tenant=tenant)
    # transcript_text can be long and the list never shows it whole (snippets are read
    # for the page's rows only).
    calls = form.filter(for_tenant(CallSession, tenant)).select_related("agent")
    calls = calls.defer("transcript_text").order_by("-started_at", "-pk")
    page = list_page(calls, request.GET.get("page"), CALLS_PER_PAGE)
    now = timezone.now()
    search_text = form.search_text
    found = snippets(page.object_list, search_text) if search_text else {}
    shown_calls = [call.public_id for call in page if found.get(call.pk)]
    if shown_calls:
        # Snippets are transcript text: logged like a transcript view, one row per page.
        record_access(
            request,
            membership,
            AccessAction.SEARCH_TRANSCRIPTS,
            query=search_text,
            calls=shown_calls,
        )
    lost = lost_instance_names(now)
    rows = [
        (
            CallRow(call, format_duration(call.duration_ms), is_stale(call, now, lost)),
            found.get(call.pk),
        )
        for call in page
    ]
    # Tell "no calls yet" apart from "no call matches", which need different advice.
    has_calls = bool(rows) or (
        (form.is_filtered or page.is_past_end) and for_tenant(CallSession, tenant).exists()
    )
    return render(
        request,
        "dashboard/calls/list.html",
        {
            "nav": "calls",
            "form": form,
            "page": page,
            "rows": rows,
            "has_calls": has_calls,
            "is_filtered": form.is_filtered,
            "search_text": search_text,
        },
    )


@require_GET
@tenant_view()
def call_detail(request: HttpRequest, membership: Membership, call_id: str) -> HttpResponse:
    call = _call_or_404(membership, call_id)
    tool_invocations = list(
        call.tool_invocations.select_related("tool").order_by("created_at", "pk")
    )
    # Without transcript consent nothing is read, even rows that should not exist.
    timeline = (
        build_timeline(call, call.transcript.all(), tool_invocations)
        if call.stores_transcript
        else []
    )
    if timeline:
        # Reading a transcript is logged; a page with nothing to read is not.
        record_access(request, membership, AccessAction.VIEW_TRANSCRIPT, call=call)
    usage_records = list(call.usage.order_by("created_at", "pk"))
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
            "timeline": timeline,
            "recording": recording_panel(membership, call),
            "latency": latency_summary(call.latencies_ms or []),
            "usage_records": usage_records,
            "usage_totals": usage_totals(usage_records),
            "cost_rows": cost_rows(breakdown) if breakdown is not None else [],
            "cost_breakdown": breakdown,
            "unpriced_count": sum(1 for record in usage_records if record.price_id is None),
            "tool_invocations": tool_invocations,
            "can_hold": membership.allows(Permission.HOLD),
            "can_export": membership.allows(Permission.EXPORT),
            "export_formats": ExportFormat.choices,
        },
    )


@require_POST
@tenant_view()
def call_hold(request: HttpRequest, membership: Membership, call_id: str) -> HttpResponse:
    """Set (``hold=on``) or lift (``hold=off``) the call's legal hold."""
    call = _call_or_404(membership, call_id)
    require(membership, Permission.HOLD)
    wanted = request.POST.get("hold")
    if wanted not in {"on", "off"}:
        messages.error(request, "Say whether to set or lift the legal hold.")
        return redirect("dashboard:call_detail", call_id=call.public_id)
    hold = wanted == "on"
    if change_legal_hold(request, membership, call, hold=hold):
        messages.success(
            request,
            "Legal hold set: retention will keep this call until the hold is lifted."
            if hold
            else "Legal hold lifted: retention applies to this call again.",
        )
    else:
        messages.info(
            request,
            "This call is already under legal hold." if hold else "This call has no legal hold.",
        )
    return redirect("dashboard:call_detail", call_id=call.public_id)


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
