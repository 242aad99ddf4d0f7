"""Dashboard pages for tools: list, form, test runs, history, duplicate, delete, secrets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from dashboard.access import require, tenant_view
from dashboard.forms.tools import ToolForm, ToolTestForm
from dashboard.pagination import list_page
from dashboard.views.calls import pretty_json
from tenancy.models import Membership
from tenancy.roles import Permission
from tenancy.scoping import for_tenant, get_for_tenant_or_404
from tools.actions import (
    delete_tool,
    duplicate_tool,
    ensure_builtin_tools,
    rotate_signing_secret,
)
from tools.invocation_stats import tool_summaries
from tools.invocations import ToolInvocation
from tools.models import ToolDefinition, ToolKind
from tools.outcomes import HttpExchange, ToolOutcome
from tools.trials import run_test

INVOCATIONS_PER_PAGE = 25


@dataclass(frozen=True)
class TestRun:
    """What the test panel shows of one run."""

    outcome: ToolOutcome
    invocation: ToolInvocation
    output: str  # indented when it is JSON
    # Bodies as sent and received (the signature is over the exact bytes), secrets redacted.
    exchanges: tuple[HttpExchange, ...]


@dataclass(frozen=True)
class InvocationRow:
    invocation: ToolInvocation
    arguments: str  # "" unless stored
    result: str


def _tool_or_404(membership: Membership, tool_id: str) -> ToolDefinition:
    return get_for_tenant_or_404(ToolDefinition, membership.tenant, public_id=tool_id)


@tenant_view()
def tool_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    ensure_builtin_tools(membership.tenant)
    tools = (
        for_tenant(ToolDefinition, membership.tenant)
        .annotate(agent_count=Count("agents"))
        .order_by("name")
    )
    own_tools = [tool for tool in tools if tool.kind != ToolKind.BUILTIN]
    builtin_tools = [tool for tool in tools if tool.kind == ToolKind.BUILTIN]
    return render(
        request,
        "dashboard/tools/list.html",
        {"nav": "tools", "tools": own_tools, "builtin_tools": builtin_tools},
    )


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
    if data is not None:
        # The form's instance holds the rejected values: test and list the stored tool.
        tool = _tool_or_404(membership, tool_id)
    test_form = (
        ToolTestForm(tool=tool, remote_name=request.GET.get("remote_name", ""))
        if can_edit
        else None
    )
    return _render_form(request, form, tool=tool, test_form=test_form)


@require_http_methods(["GET", "POST"])
@tenant_view()
def tool_test(request: HttpRequest, membership: Membership, tool_id: str) -> HttpResponse:
    """Run the tool now (POST), or show the test form for another remote tool (GET).

    htmx requests get the test panel alone; others the whole tool page, so the form
    works without JavaScript too.
    """
    tool = _tool_or_404(membership, tool_id)
    require(membership, Permission.EDIT)
    remote_name = request.POST.get("remote_name") or request.GET.get("remote_name", "")
    data = request.POST if request.method == "POST" else None
    test_form = ToolTestForm(data, tool=tool, remote_name=remote_name)
    test_run = None
    if data is not None and test_form.can_run and test_form.is_valid():
        outcome, invocation = run_test(
            tool,
            test_form.cleaned_data["arguments"],
            remote_name=test_form.cleaned_data.get("remote_name", ""),
        )
        test_run = _test_run(outcome, invocation)
    if request.htmx:  # type: ignore[attr-defined]  # set by django_htmx's middleware
        context = {
            "tool": tool,
            "test_form": test_form,
            "test_run": test_run,
            # A run adds a row: the history below the panel is swapped in afresh (oob).
            "refresh_history": test_run is not None,
            **(_history(request, tool) if test_run else {}),
        }
        return render(request, "dashboard/tools/_test.html", context)
    form = ToolForm(instance=tool, tenant=membership.tenant)
    return _render_form(request, form, tool=tool, test_form=test_form, test_run=test_run)


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


def _render_form(
    request: HttpRequest,
    form: ToolForm,
    tool: ToolDefinition | None,
    *,
    test_form: ToolTestForm | None = None,
    test_run: TestRun | None = None,
) -> HttpResponse:
    context: dict[str, Any] = {"nav": "tools", "form": form, "tool": tool, "agents": []}
    if tool is not None:
        context.update(
            agents=tool.agents.order_by("name"),
            test_form=test_form,
            test_run=test_run,
            **_history(request, tool),
        )
    return render(request, "dashboard/tools/form.html", context)


def _history(request: HttpRequest, tool: ToolDefinition) -> dict[str, Any]:
    """The tool's invocations, newest first and a page at a time, and their summary."""
    invocations = (
        ToolInvocation.objects.filter(tenant=tool.tenant, tool=tool)
        .select_related("call")
        .order_by("-created_at", "-pk")
    )
    page = list_page(invocations, request.GET.get("page"), INVOCATIONS_PER_PAGE)
    rows = [
        InvocationRow(
            invocation,
            arguments=_shown_arguments(invocation),
            result=pretty_json(invocation.result) if invocation.stores_content else "",
        )
        for invocation in page
    ]
    return {"history_page": page, "history_rows": rows, "summaries": tool_summaries(tool)}


def _shown_arguments(invocation: ToolInvocation) -> str:
    if not invocation.stores_content or invocation.arguments is None:
        return ""
    return json.dumps(invocation.arguments, indent=2, ensure_ascii=False)


def _test_run(outcome: ToolOutcome, invocation: ToolInvocation) -> TestRun:
    return TestRun(outcome, invocation, pretty_json(outcome.output), outcome.exchanges)


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
