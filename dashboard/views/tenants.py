"""Tenants: create one, switch between yours, edit the current one's settings."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from billing import budgets
from billing.models import BillingSettings
from dashboard.access import tenant_view
from dashboard.forms.billing import BudgetForm
from dashboard.forms.events import EventEndpointForm
from dashboard.forms.tenancy import TenantForm, TenantSettingsForm
from events.models import EventEndpoint
from tenancy import two_factor
from tenancy.actions import create_tenant
from tenancy.current import current_membership, switch_tenant
from tenancy.models import Membership, Tenant
from tenancy.roles import Permission, Role
from tenancy.scoping import for_tenant


@login_required
def tenant_create(request: HttpRequest) -> HttpResponse:
    """Anyone logged in may create tenants; the creator becomes the owner."""
    form = TenantForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        tenant = create_tenant(
            request.user, form.cleaned_data["name"], form.cleaned_data["time_zone"]
        )
        switch_tenant(request, tenant)
        messages.success(request, f"{tenant.name} is ready. Create its first agent.")
        return redirect("dashboard:agent_list")
    is_first = current_membership(request) is None
    return render(request, "dashboard/tenants/create.html", {"form": form, "is_first": is_first})


@require_POST
@login_required
def tenant_switch(request: HttpRequest, tenant_id: str) -> HttpResponse:
    membership = (
        Membership.objects.filter(user=request.user, tenant__public_id=tenant_id)  # type: ignore[misc]
        .select_related("tenant")
        .first()
    )
    if membership is None:
        raise Http404("No such tenant among yours.")
    switch_tenant(request, membership.tenant)
    messages.info(request, f"Now working in {membership.tenant.name}.")
    return redirect("dashboard:agent_list")


@tenant_view(Permission.MANAGE)
def tenant_settings(request: HttpRequest, membership: Membership) -> HttpResponse:
    form = _settings_form(request, membership, request.POST if request.method == "POST" else None)
    if form.is_valid():
        form.save()
        messages.success(request, "Settings saved.")
        return redirect("dashboard:tenant_settings")
    return render_settings(request, membership, form=form)


@require_POST
@tenant_view(Permission.MANAGE)
def tenant_budget(request: HttpRequest, membership: Membership) -> HttpResponse:
    billing, _ = BillingSettings.objects.get_or_create(tenant_id=membership.tenant_id)
    budget_form = BudgetForm(request.POST, instance=billing)
    if not budget_form.is_valid():
        return render_settings(request, membership, budget_form=budget_form)
    budget_form.save()
    budgets.refresh(membership.tenant_id)  # the call path sees the new budget at once
    messages.success(request, "Budget saved.")
    return redirect("dashboard:tenant_settings")


def _settings_form(request: HttpRequest, membership: Membership, data: Any) -> TenantSettingsForm:
    # A copy: an invalid POST must not rename the tenant shown in the page's header.
    return TenantSettingsForm(
        data,
        instance=Tenant.objects.get(pk=membership.tenant_id),
        is_owner=membership.role == Role.OWNER,
        has_two_factor=two_factor.is_enabled(request.user),
    )


def render_settings(
    request: HttpRequest,
    membership: Membership,
    *,
    form: TenantSettingsForm | None = None,
    events_form: EventEndpointForm | None = None,
    budget_form: BudgetForm | None = None,
) -> HttpResponse:
    """The settings page: the tenant's own settings, its budget and its events endpoint."""
    if budget_form is None:
        billing = BillingSettings.objects.filter(tenant_id=membership.tenant_id).first()
        budget_form = BudgetForm(instance=billing)
    if form is None:
        form = _settings_form(request, membership, None)
    endpoint = for_tenant(EventEndpoint, membership.tenant).first()
    if events_form is None:
        events_form = EventEndpointForm(initial={"events_url": endpoint.url if endpoint else ""})
    return render(
        request,
        "dashboard/tenants/settings.html",
        {
            "form": form,
            "events_form": events_form,
            "budget_form": budget_form,
            "endpoint": endpoint,
            "nav": "settings",
        },
    )
