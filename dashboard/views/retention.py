"""Retention settings: the tenant's policy, per-agent overrides, and what the purge removed."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from agents.models import Agent
from dashboard.access import require, tenant_view
from dashboard.forms.retention import AgentRetentionForm, TenantRetentionForm
from retention.models import PurgeLog, RetentionPolicy
from retention.policies import Kind, TenantPolicies
from tenancy.models import Membership
from tenancy.roles import Permission
from tenancy.scoping import for_tenant, get_for_tenant_or_404

RECENT_PURGES = 20


@dataclass
class AgentRetention:
    """One agent's row on the page: its override (None: none) and the days in force."""

    agent: Agent
    override: RetentionPolicy | None
    recording_days: int | None
    transcript_days: int | None


@tenant_view(Permission.MANAGE)
def retention_settings(request: HttpRequest, membership: Membership) -> HttpResponse:
    tenant = membership.tenant
    policy = for_tenant(RetentionPolicy, tenant).filter(agent__isnull=True).first()
    form = TenantRetentionForm(
        request.POST if request.method == "POST" else None,
        instance=policy or RetentionPolicy(tenant=tenant),
    )
    if form.is_valid():
        # Unchanged (e.g. "keep forever" without a policy yet, which is the same): no write.
        if form.has_changed():
            saved = form.save(commit=False)
            saved.updated_at = timezone.now()
            saved.save()
        messages.success(request, "Retention policy saved: the next purge applies it.")
        return redirect("dashboard:retention_settings")
    policies = TenantPolicies.load(tenant)
    overrides = {
        row.agent_id: row for row in for_tenant(RetentionPolicy, tenant).filter(agent__isnull=False)
    }
    agents = [
        AgentRetention(
            agent=agent,
            override=overrides.get(agent.pk),
            recording_days=policies.days_for(Kind.RECORDING, agent.pk),
            transcript_days=policies.days_for(Kind.TRANSCRIPT, agent.pk),
        )
        for agent in for_tenant(Agent, tenant).order_by("name")
    ]
    purges = for_tenant(PurgeLog, tenant).order_by("-started_at")[:RECENT_PURGES]
    return render(
        request,
        "dashboard/retention/settings.html",
        {"form": form, "agents": agents, "purges": purges, "nav": "settings"},
    )


@tenant_view()
def retention_agent(request: HttpRequest, membership: Membership, agent_id: str) -> HttpResponse:
    """Set or clear one agent's override; leaving every field empty removes it."""
    tenant = membership.tenant
    # Another tenant's agent is unknown to every role, before any role check.
    agent = get_for_tenant_or_404(Agent, tenant, public_id=agent_id)
    require(membership, Permission.MANAGE)
    override = for_tenant(RetentionPolicy, tenant).filter(agent=agent).first()
    form = AgentRetentionForm(
        request.POST if request.method == "POST" else None,
        instance=override or RetentionPolicy(tenant=tenant, agent=agent),
    )
    if form.is_valid():
        with transaction.atomic():
            if form.overrides_anything:
                RetentionPolicy.objects.update_or_create(
                    tenant=tenant,
                    agent=agent,
                    defaults={**form.cleaned_data, "updated_at": timezone.now()},
                )
                messages.success(request, f"Retention of {agent.name} saved.")
            else:
                RetentionPolicy.objects.filter(tenant=tenant, agent=agent).delete()
                messages.success(request, f"{agent.name} now follows the tenant's retention.")
        return redirect("dashboard:retention_settings")
    tenant_policy = TenantPolicies.load(tenant)
    return render(
        request,
        "dashboard/retention/agent.html",
        {
            "form": form,
            "agent": agent,
            "tenant_recording_days": tenant_policy.tenant_days[Kind.RECORDING.value],
            "tenant_transcript_days": tenant_policy.tenant_days[Kind.TRANSCRIPT.value],
            "nav": "settings",
        },
    )
