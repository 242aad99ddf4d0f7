"""Provider credentials (OpenAI / Azure keys): encrypted at rest, never shown again."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from dashboard.access import require, tenant_view
from dashboard.forms.tenancy import CredentialForm
from tenancy.models import Membership, ProviderCredential
from tenancy.roles import Permission
from tenancy.scoping import for_tenant, get_for_tenant_or_404


def _credential_or_404(membership: Membership, credential_id: str) -> ProviderCredential:
    return get_for_tenant_or_404(ProviderCredential, membership.tenant, public_id=credential_id)


@tenant_view(Permission.MANAGE)
def credential_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    credentials = (
        for_tenant(ProviderCredential, membership.tenant)
        .annotate(agent_count=Count("agents"))
        .order_by("name")
    )
    return render(
        request,
        "dashboard/credentials/list.html",
        {"credentials": credentials, "nav": "credentials"},
    )


@tenant_view(Permission.MANAGE)
def credential_create(request: HttpRequest, membership: Membership) -> HttpResponse:
    return _form_page(request, membership, ProviderCredential())


@tenant_view()
def credential_edit(
    request: HttpRequest, membership: Membership, credential_id: str
) -> HttpResponse:
    credential = _credential_or_404(membership, credential_id)
    require(membership, Permission.MANAGE)
    return _form_page(request, membership, credential)


@tenant_view()
def credential_delete(
    request: HttpRequest, membership: Membership, credential_id: str
) -> HttpResponse:
    """GET asks for confirmation (listing the agents that use the key); POST deletes."""
    credential = _credential_or_404(membership, credential_id)
    require(membership, Permission.MANAGE)
    if request.method == "POST":
        credential.delete()
        messages.success(request, f"Provider key “{credential.name}” deleted.")
        return redirect("dashboard:credential_list")
    agents = credential.agents.order_by("name")
    return render(
        request,
        "dashboard/credentials/confirm_delete.html",
        {"credential": credential, "agents": agents, "nav": "credentials"},
    )


def _form_page(
    request: HttpRequest, membership: Membership, credential: ProviderCredential
) -> HttpResponse:
    is_new = credential.pk is None
    # The page heading keeps the stored name even while an edited one has errors.
    stored_name = credential.name
    form = CredentialForm(
        request.POST if request.method == "POST" else None,
        instance=credential,
        tenant=membership.tenant,
    )
    if form.is_valid():
        saved = form.save()
        verb = "added" if is_new else "saved"
        messages.success(request, f"Provider key “{saved.name}” {verb}; it is stored encrypted.")
        return redirect("dashboard:credential_list")
    return render(
        request,
        "dashboard/credentials/form.html",
        {
            "form": form,
            "credential": None if is_new else credential,
            "stored_name": stored_name,
            "nav": "credentials",
        },
    )
