"""Dashboard pages for agents: list, configuration form, versions and widget keys."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from agents.models import Agent
from agents.versions import duplicate_agent, version_diff
from dashboard.access import require, tenant_view
from dashboard.forms.agents import (
    MODEL_SUGGESTIONS,
    VOICE_SUGGESTIONS,
    AgentForm,
    WidgetKeyForm,
    embed_snippet,
    revoke_widget_key,
)
from tenancy.models import Membership
from tenancy.roles import Permission
from tenancy.scoping import for_tenant, get_for_tenant_or_404
from tools.models import ToolDefinition

DIFF_LINE_CLASSES = (("@@", "hunk"), ("+", "add"), ("-", "del"))


def _agent_or_404(membership: Membership, agent_id: str) -> Agent:
    agents = Agent.objects.select_related("credential", "current_version")
    return get_for_tenant_or_404(agents, membership.tenant, public_id=agent_id)


@tenant_view()
def agent_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    agents = (
        for_tenant(Agent, membership.tenant)
        .select_related("current_version")
        .annotate(tool_count=Count("tools"))
        .order_by("name")
    )
    has_tools = for_tenant(ToolDefinition, membership.tenant).exists()
    return render(
        request,
        "dashboard/agents/list.html",
        {"nav": "agents", "agents": agents, "has_tools": has_tools},
    )


@tenant_view(Permission.EDIT)
def agent_create(request: HttpRequest, membership: Membership) -> HttpResponse:
    data = request.POST if request.method == "POST" else None
    form = AgentForm(data, tenant=membership.tenant)
    if form.is_valid():
        version = form.save_version(request.user)
        messages.success(request, f"Agent “{version.agent.name}” created (version 1).")
        return redirect("dashboard:agent_detail", agent_id=version.agent.public_id)
    return _render_form(request, form, agent=None)


@tenant_view()
def agent_detail(request: HttpRequest, membership: Membership, agent_id: str) -> HttpResponse:
    agent = _agent_or_404(membership, agent_id)
    return _render_detail(request, agent, WidgetKeyForm())


@tenant_view()
def agent_edit(request: HttpRequest, membership: Membership, agent_id: str) -> HttpResponse:
    agent = _agent_or_404(membership, agent_id)
    require(membership, Permission.EDIT)
    previous_version_id = agent.current_version_id
    data = request.POST if request.method == "POST" else None
    form = AgentForm(data, instance=agent, tenant=membership.tenant)
    if form.is_valid():
        version = form.save_version(request.user)
        if version.pk == previous_version_id:
            messages.info(request, "Nothing changed, so no new version was recorded.")
        else:
            messages.success(request, f"Saved as version {version.number}.")
        return redirect("dashboard:agent_detail", agent_id=agent.public_id)
    return _render_form(request, form, agent=agent)


@require_POST
@tenant_view()
def agent_duplicate(request: HttpRequest, membership: Membership, agent_id: str) -> HttpResponse:
    agent = _agent_or_404(membership, agent_id)
    require(membership, Permission.EDIT)
    copy = duplicate_agent(agent, request.user)
    messages.success(request, f"Created “{copy.name}”, a copy of “{agent.name}”.")
    return redirect("dashboard:agent_detail", agent_id=copy.public_id)


@tenant_view()
def agent_delete(request: HttpRequest, membership: Membership, agent_id: str) -> HttpResponse:
    agent = _agent_or_404(membership, agent_id)
    require(membership, Permission.EDIT)
    if request.method == "POST":
        name = agent.name
        agent.delete()
        messages.success(request, f"Agent “{name}” deleted.")
        return redirect("dashboard:agent_list")
    return render(
        request,
        "dashboard/agents/confirm_delete.html",
        {"nav": "agents", "agent": agent, "widget_key_count": agent.widget_keys.count()},
    )


@tenant_view()
def agent_version(
    request: HttpRequest, membership: Membership, agent_id: str, number: int
) -> HttpResponse:
    agent = _agent_or_404(membership, agent_id)
    version = get_object_or_404(agent.versions.select_related("created_by"), number=number)
    previous = agent.versions.filter(number__lt=number).order_by("-number").first()
    following = agent.versions.filter(number__gt=number).order_by("number").first()
    diff_lines = [(_diff_line_class(line), line) for line in version_diff(previous, version)]
    return render(
        request,
        "dashboard/agents/version.html",
        {
            "nav": "agents",
            "agent": agent,
            "version": version,
            "previous": previous,
            "following": following,
            "config_json": json.dumps(version.config, indent=2, sort_keys=True),
            "diff_lines": diff_lines,
        },
    )


@require_POST
@tenant_view()
def widget_key_create(request: HttpRequest, membership: Membership, agent_id: str) -> HttpResponse:
    agent = _agent_or_404(membership, agent_id)
    require(membership, Permission.EDIT)
    form = WidgetKeyForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, agent, form)
    widget_key = form.save(agent)
    messages.success(request, f"Widget key {widget_key.key} created.")
    return redirect(reverse("dashboard:agent_detail", args=[agent.public_id]) + "#widget-keys")


@require_POST
@tenant_view()
def widget_key_revoke(
    request: HttpRequest, membership: Membership, agent_id: str, key: str
) -> HttpResponse:
    agent = _agent_or_404(membership, agent_id)
    # Widget keys belong to the tenant through their agent, which is already scoped.
    widget_key = get_object_or_404(agent.widget_keys, key=key)
    require(membership, Permission.EDIT)
    revoke_widget_key(widget_key)
    messages.success(request, f"Widget key {widget_key.key} revoked; embeds using it stop working.")
    return redirect(reverse("dashboard:agent_detail", args=[agent.public_id]) + "#widget-keys")


def _render_form(request: HttpRequest, form: AgentForm, agent: Agent | None) -> HttpResponse:
    return render(
        request,
        "dashboard/agents/form.html",
        {
            "nav": "agents",
            "form": form,
            "agent": agent,
            "model_suggestions": MODEL_SUGGESTIONS,
            "voice_suggestions": VOICE_SUGGESTIONS,
        },
    )


def _render_detail(
    request: HttpRequest, agent: Agent, widget_key_form: WidgetKeyForm
) -> HttpResponse:
    site = settings.KOE_SITE_URL
    widget_keys = [
        (widget_key, embed_snippet(site, widget_key) if widget_key.is_active else "")
        for widget_key in agent.widget_keys.select_related("agent").order_by("-created_at")
    ]
    return render(
        request,
        "dashboard/agents/detail.html",
        {
            "nav": "agents",
            "agent": agent,
            "tools": agent.tools.order_by("name"),
            "widget_keys": widget_keys,
            "widget_key_form": widget_key_form,
            "versions": agent.versions.select_related("created_by").order_by("-number"),
        },
    )


def _diff_line_class(line: str) -> str:
    for prefix, css_class in DIFF_LINE_CLASSES:
        if line.startswith(prefix):
            return css_class
    return ""
