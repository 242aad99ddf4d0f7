"""Dashboard pages for tool definitions: list, form, duplicate, delete, signing secrets."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from dashboard.access import require, tenant_view
from dashboard.forms.tools import ToolForm
from tenancy.models import Membership
from tenancy.roles import Permission
from tenancy.scoping import for_tenant, get_for_tenant_or_404
from tools.actions import delete_tool, duplicate_tool, rotate_signing_secret
from tools.models import ToolDefinition, ToolKind


def _tool_or_404(membership: Membership, tool_id: str) -> ToolDefinition:
    return get_for_tenant_or_404(ToolDefinition, membership.tenant, public_id=tool_id)


@tenant_view()
def tool_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    tools = (
        for_tenant(ToolDefinition, membership.tenant)
        .annotate(agent_count=Count("agents"))
        .order_by("name")
    )
    return render(request, "dashboard/tools/list.html", {"nav": "tools", "tools": tools})


@tenant_view(Permission.EDIT)
def tool_create(request: HttpRequest, membership: Membership) -> HttpResponse:
    data = request.POST if request.method == "POST" else None
    form = ToolForm(data, tenant=membership.tenant)
    if form.is_valid():
        tool = form.save_tool(request.user)
        if tool.kind == ToolKind.WEBHOOK:
            return _show_secret_once(request, tool, tool.signing_secret, "created")
        messages.success(request, f"Tool “{tool.name}” created.")
        _warn_about_listing(request, form)
        return redirect("dashboard:tool_edit", tool_id=tool.public_id)
    return _render_form(request, form, tool=None)


@tenant_view()
def tool_edit(request: HttpRequest, membership: Membership, tool_id: str) -> HttpResponse:
    """The tool's page: an editable form for editors, a read-only one for auditors."""
    tool = _tool_or_404(membership, tool_id)
    can_edit = membership.allows(Permission.EDIT)
    if request.method == "POST":
        require(membership, Permission.EDIT)
    data = request.POST if request.method == "POST" else None
    form = ToolForm(data, instance=tool, tenant=membership.tenant, read_only=not can_edit)
    if data is not None and form.is_valid():
        tool = form.save_tool(request.user)
        messages.success(request, f"Tool “{tool.name}” saved.")
        _warn_about_listing(request, form)
        return redirect("dashboard:tool_edit", tool_id=tool.public_id)
    return _render_form(request, form, tool=tool)


@require_POST
@tenant_view()
def tool_duplicate(request: HttpRequest, membership: Membership, tool_id: str) -> HttpResponse:
    tool = _tool_or_404(membership, tool_id)
    require(membership, Permission.EDIT)
    copy = duplicate_tool(tool)
    if copy.kind == ToolKind.WEBHOOK:
        return _show_secret_once(request, copy, copy.signing_secret, "duplicated")
    messages.success(request, f"Created “{copy.name}”, a copy of “{tool.name}”.")
    return redirect("dashboard:tool_edit", tool_id=copy.public_id)


@tenant_view()
def tool_delete(request: HttpRequest, membership: Membership, tool_id: str) -> HttpResponse:
    tool = _tool_or_404(membership, tool_id)
    require(membership, Permission.EDIT)
    if request.method == "POST":
        delete_tool(tool, request.user)
        messages.success(request, f"Tool “{tool.name}” deleted.")
        return redirect("dashboard:tool_list")
    return render(
        request,
        "dashboard/tools/confirm_delete.html",
        {"nav": "tools", "tool": tool, "agents": tool.agents.order_by("name")},
    )


@require_POST
@tenant_view()
def tool_rotate_secret(request: HttpRequest, membership: Membership, tool_id: str) -> HttpResponse:
    tool = _tool_or_404(membership, tool_id)
    require(membership, Permission.EDIT)
    secret = rotate_signing_secret(tool)
    return _show_secret_once(request, tool, secret, "rotated")


def _warn_about_listing(request: HttpRequest, form: ToolForm) -> None:
    warning = form.mcp_listing_warning()
    if warning:
        messages.warning(request, warning)


def _render_form(request: HttpRequest, form: ToolForm, tool: ToolDefinition | None) -> HttpResponse:
    agents = tool.agents.order_by("name") if tool is not None else []
    return render(
        request,
        "dashboard/tools/form.html",
        {"nav": "tools", "form": form, "tool": tool, "agents": agents},
    )


def _show_secret_once(
    request: HttpRequest, tool: ToolDefinition, secret: str, event: str
) -> HttpResponse:
    """Rendered in the POST's own response, so the secret is never stored in a session."""
    response = render(
        request,
        "dashboard/tools/secret.html",
        {"nav": "tools", "tool": tool, "secret": secret, "event": event},
    )
    response["Cache-Control"] = "no-store"
    return response
