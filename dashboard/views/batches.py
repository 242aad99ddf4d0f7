"""Batch calls: the list, a new batch from a CSV file, one batch's progress and entries.

Everyone may follow batches; editors create, pause, resume and cancel them. The callees'
numbers and references are personal data that following a batch does not need: owners
and admins see them; editors and auditors see each entry's progress and the call it led
to, not the list of who was called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST, require_safe

from agents.telephony.batches import (
    BatchStateError,
    cancel_batch,
    entry_counts,
    pause_batch,
    resume_batch,
)
from agents.telephony.models import (
    UNFINISHED_BATCH_STATUSES,
    BatchStatus,
    CallBatch,
    Carrier,
    EntryStatus,
    PhoneNumber,
)
from agents.telephony.tasks import dispatch_soon
from calls.end_users import masks_phone_numbers
from dashboard.access import require, tenant_view
from dashboard.forms.batches import BatchForm
from dashboard.pagination import list_page
from tenancy.models import Membership
from tenancy.roles import Permission
from tenancy.scoping import for_tenant, get_for_tenant_or_404

BATCHES_PER_PAGE = 50
ENTRIES_PER_PAGE = 50


@dataclass(frozen=True)
class Progress:
    """A batch's entries by status, for its row or page."""

    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        return self.total - self.counts[EntryStatus.PENDING] - self.counts[EntryStatus.CALLING]

    @property
    def by_status(self) -> list[tuple[str, str, int]]:
        return [(value, label, self.counts[value]) for value, label in EntryStatus.choices]


def shows_callees(membership: Membership) -> bool:
    # Callees' numbers and references: only to the roles that see callers' numbers.
    return not masks_phone_numbers(membership)


def _batch_or_404(membership: Membership, batch_id: str) -> CallBatch:
    batches = CallBatch.objects.select_related("agent", "phone_number")
    return get_for_tenant_or_404(batches, membership.tenant, public_id=batch_id)


# The list only reads: a POST (an auditor's included) is answered 405, not with the page.
@require_safe
@tenant_view()
def batch_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    batches = (
        for_tenant(CallBatch, membership.tenant)
        .select_related("agent", "phone_number")
        .order_by("-created_at", "-pk")
    )
    page = list_page(batches, request.GET.get("page"), BATCHES_PER_PAGE)
    counts = entry_counts(batch.pk for batch in page)
    return render(
        request,
        "dashboard/batches/list.html",
        {
            "nav": "batches",
            "page": page,
            "rows": [(batch, Progress(counts[batch.pk])) for batch in page],
        },
    )


@tenant_view(Permission.EDIT)
def batch_create(request: HttpRequest, membership: Membership) -> HttpResponse:
    is_post = request.method == "POST"
    form = BatchForm(
        request.POST if is_post else None,
        request.FILES if is_post else None,
        tenant=membership.tenant,
    )
    if form.is_valid():
        batch = form.save()
        if batch is not None:
            dispatch_soon(batch)
            messages.success(
                request, f"Batch “{batch.name}” created: its calls start inside the window."
            )
            return redirect("dashboard:batch_detail", batch_id=batch.public_id)
    has_numbers = (
        for_tenant(PhoneNumber, membership.tenant)
        .filter(carrier_account__carrier=Carrier.TWILIO)
        .exists()
    )
    return render(
        request,
        "dashboard/batches/form.html",
        {"nav": "batches", "form": form, "has_numbers": has_numbers},
    )


@require_GET
@tenant_view()
def batch_detail(request: HttpRequest, membership: Membership, batch_id: str) -> HttpResponse:
    batch = _batch_or_404(membership, batch_id)
    status = request.GET.get("status", "")
    entries = (
        batch.entries.select_related("last_phone_call__call")
        .defer("last_phone_call__call__transcript_text")
        .order_by("position")
    )
    if status in EntryStatus.values:
        entries = entries.filter(status=status)
    else:
        status = ""
    return render(
        request,
        "dashboard/batches/detail.html",
        {
            "nav": "batches",
            "batch": batch,
            "progress": Progress(entry_counts([batch.pk])[batch.pk]),
            "page": list_page(entries, request.GET.get("page"), ENTRIES_PER_PAGE),
            "status": status,
            "shows_callees": shows_callees(membership),
            "is_unfinished": batch.status in UNFINISHED_BATCH_STATUSES,
            "is_paused": batch.status == BatchStatus.PAUSED,
        },
    )


def _change(
    request: HttpRequest,
    membership: Membership,
    batch_id: str,
    action: Callable[[CallBatch], CallBatch],
    done: str,
) -> HttpResponse:
    batch = _batch_or_404(membership, batch_id)
    require(membership, Permission.EDIT)
    try:
        changed = action(batch)
    except BatchStateError as refused:
        messages.error(request, refused.message)
    else:
        messages.success(request, done.format(name=changed.name))
    return redirect("dashboard:batch_detail", batch_id=batch.public_id)


@require_POST
@tenant_view()
def batch_pause(request: HttpRequest, membership: Membership, batch_id: str) -> HttpResponse:
    done = "Batch “{name}” paused: no new calls until you resume it."
    return _change(request, membership, batch_id, pause_batch, done)


@require_POST
@tenant_view()
def batch_resume(request: HttpRequest, membership: Membership, batch_id: str) -> HttpResponse:
    def resume_and_dispatch(batch: CallBatch) -> CallBatch:
        resumed = resume_batch(batch)
        dispatch_soon(resumed)
        return resumed

    done = "Batch “{name}” resumed."
    return _change(request, membership, batch_id, resume_and_dispatch, done)


@require_POST
@tenant_view()
def batch_cancel(request: HttpRequest, membership: Membership, batch_id: str) -> HttpResponse:
    done = "Batch “{name}” cancelled: its remaining numbers will not be called."
    return _change(request, membership, batch_id, cancel_batch, done)
