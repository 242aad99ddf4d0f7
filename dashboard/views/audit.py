"""Dashboard pages of the audit: the access log, and call exports with their downloads."""

from __future__ import annotations

import logging
from typing import Any, cast
from urllib.parse import urlencode

from django.contrib import messages
from django.http import FileResponse, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from audit.export_formats import CONTENT_TYPES, EXTENSIONS
from audit.exports import (
    DOWNLOAD_LINK_SECONDS,
    ExportError,
    download_token,
    export_id_from_token,
    filters_from_query,
    withholds_numbers_from,
)
from audit.log import record_access
from audit.models import AccessAction, AccessLog, CallExport, ExportFormat, ExportStatus
from audit.tasks import start_export
from calls.models import CallSession
from dashboard.access import require, tenant_view
from dashboard.forms.audit import MAX_QUERY_LENGTH, AccessLogFilterForm, ExportForm
from dashboard.pagination import list_page
from tenancy.models import Membership
from tenancy.roles import Permission
from tenancy.scoping import for_tenant, get_for_tenant_or_404

logger = logging.getLogger(__name__)

ROWS_PER_PAGE = 50
EXPORTS_PER_PAGE = 25
# How often the export page asks for progress while the task runs.
PROGRESS_POLL_SECONDS = 2
NUMBERS_WITHHELD = (
    "This export shows callers' phone numbers, which your role does not see. "
    "Export the calls again: your file will mask them."
)


@require_GET
@tenant_view(Permission.AUDIT_LOG)
def access_log(request: HttpRequest, membership: Membership) -> HttpResponse:
    form = AccessLogFilterForm(request.GET or None, tenant=membership.tenant)
    rows = form.filter(for_tenant(AccessLog, membership.tenant))
    page = list_page(rows, request.GET.get("page"), ROWS_PER_PAGE)
    # Link the calls that still exist; a deleted call keeps its id as text.
    call_ids = {row.call_public_id for row in page if row.call_public_id}
    existing = set(
        for_tenant(CallSession, membership.tenant)
        .filter(public_id__in=call_ids)
        .values_list("public_id", flat=True)
    )
    return render(
        request,
        "dashboard/audit/access_log.html",
        {
            "nav": "audit",
            "form": form,
            "page": page,
            "rows": [(row, detail_items(row.detail)) for row in page],
            "existing_calls": existing,
            "is_filtered": form.is_filtered,
        },
    )


@require_GET
@tenant_view(Permission.EXPORT)
def export_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    exports = for_tenant(CallExport, membership.tenant)
    page = list_page(exports, request.GET.get("page"), EXPORTS_PER_PAGE)
    return render(request, "dashboard/audit/export_list.html", {"nav": "exports", "page": page})


@require_POST
@tenant_view(Permission.EXPORT)
def export_create(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Start an export of one call (``call``) or of the call list's query (``query``)."""
    form = ExportForm(request.POST)
    back = _back_url(request)
    if not form.is_valid():
        messages.error(request, "Choose a format for the export: JSON, CSV or plain text.")
        return redirect(back)
    call_id = form.cleaned_data["call"]
    try:
        if call_id:
            call = get_for_tenant_or_404(CallSession, membership.tenant, public_id=call_id)
            export = start_export(request, membership, form.cleaned_data["format"], call=call)
        else:
            filters = filters_from_query(form.cleaned_data["query"])
            export = start_export(request, membership, form.cleaned_data["format"], filters=filters)
    except ExportError as error:
        messages.error(request, str(error))
        return redirect(back)
    return redirect("dashboard:export_detail", export_id=export.public_id)


@require_GET
@tenant_view()
def export_detail(request: HttpRequest, membership: Membership, export_id: str) -> HttpResponse:
    """The export's progress (polled by htmx while it runs) and, once ready, its link."""
    export = get_for_tenant_or_404(CallExport, membership.tenant, public_id=export_id)
    require(membership, Permission.EXPORT)
    withheld = withholds_numbers_from(export, membership)
    context = {
        "nav": "exports",
        "export": export,
        "download_url": None if withheld else _download_url(export),
        "numbers_withheld": withheld,
        "link_minutes": DOWNLOAD_LINK_SECONDS // 60,
        "poll_seconds": PROGRESS_POLL_SECONDS,
    }
    if getattr(request, "htmx", False):
        return render(request, "dashboard/audit/_export_progress.html", context)
    return render(request, "dashboard/audit/export_detail.html", context)


@never_cache
@require_GET
@tenant_view()
def export_download(request: HttpRequest, membership: Membership, export_id: str) -> HttpResponse:
    """The file, for a member who may export now and holds a recent link to it."""
    export = get_for_tenant_or_404(CallExport, membership.tenant, public_id=export_id)
    require(membership, Permission.EXPORT)
    if export_id_from_token(request.GET.get("token", ""), membership.tenant) != export.public_id:
        messages.error(
            request,
            f"This download link has expired or is not valid. Links work for "
            f"{DOWNLOAD_LINK_SECONDS // 60} minutes: use the one below.",
        )
        return redirect("dashboard:export_detail", export_id=export.public_id)
    if export.is_removed:
        messages.error(
            request,
            f"This export was removed: {export.get_removed_reason_display()}. "
            f"Its file cannot be downloaded.",
        )
        return redirect("dashboard:export_detail", export_id=export.public_id)
    if _download_url(export) is None:
        messages.error(request, "This export has no file to download.")
        return redirect("dashboard:export_detail", export_id=export.public_id)
    if withholds_numbers_from(export, membership):
        messages.error(request, NUMBERS_WITHHELD)
        return redirect("dashboard:export_detail", export_id=export.public_id)
    call = None
    if export.is_single_call:
        call = (
            for_tenant(CallSession, membership.tenant)
            .filter(public_id=export.params["call"])
            .first()
        )
    try:
        stored = export.file.open("rb")
    except OSError:
        logger.exception("export %s: the file %s cannot be read", export_id, export.file.name)
        messages.error(request, "The file of this export cannot be read; export the calls again.")
        return redirect("dashboard:export_detail", export_id=export.public_id)
    record_access(request, membership, AccessAction.DOWNLOAD_EXPORT, call=call, export=export_id)
    extension = EXTENSIONS[ExportFormat(export.format)]
    response = FileResponse(
        stored,
        as_attachment=True,
        filename=f"koe-{export.public_id}.{extension}",
        content_type=CONTENT_TYPES[ExportFormat(export.format)],
    )
    # Streamed from storage in chunks; tenant_view types its views as HttpResponse only.
    return cast(HttpResponse, response)


def detail_items(detail: Any) -> list[tuple[str, str]]:
    """A log row's detail as (name, text) pairs: lists joined, filters as name=value."""
    if not isinstance(detail, dict):
        return []
    items = []
    for key, value in detail.items():
        if isinstance(value, dict):
            text = "; ".join(
                f"{name}={', '.join(map(str, _listed(v)))}" for name, v in value.items()
            )
        else:
            text = ", ".join(map(str, _listed(value)))
        items.append((str(key), text or "—"))
    return items


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _download_url(export: CallExport) -> str | None:
    """A fresh short-lived link, when there is a file to download."""
    if (
        export.status != ExportStatus.DONE
        or not export.file
        or export.is_expired
        or export.is_removed
    ):
        return None
    path = reverse("dashboard:export_download", args=[export.public_id])
    return f"{path}?{urlencode({'token': download_token(export)})}"


def _back_url(request: HttpRequest) -> str:
    """Where a refused export request returns: the call, or the list with its filters."""
    call_id = request.POST.get("call", "")
    if call_id:
        try:
            return reverse("dashboard:call_detail", args=[call_id])
        except NoReverseMatch:
            pass  # not a call id at all: back to the list
    # Re-encoded, so whatever was posted comes back as a plain query string.
    query = QueryDict(request.POST.get("query", "")[:MAX_QUERY_LENGTH]).urlencode()
    base = reverse("dashboard:call_list")
    return f"{base}?{query}" if query else base
