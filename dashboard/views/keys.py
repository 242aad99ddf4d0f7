"""Secret API keys: list, create (the secret is shown once, on the response), revoke."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from dashboard.access import require, tenant_view
from dashboard.forms.tenancy import ApiKeyForm
from tenancy.models import ApiKey, Membership
from tenancy.roles import Permission
from tenancy.scoping import for_tenant, get_for_tenant_or_404


@tenant_view(Permission.MANAGE)
def api_key_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    keys = for_tenant(ApiKey, membership.tenant).order_by("-created_at")
    return render(
        request,
        "dashboard/keys/list.html",
        {"keys": keys, "form": ApiKeyForm(), "nav": "keys"},
    )


@tenant_view(Permission.MANAGE)
def api_key_create(request: HttpRequest, membership: Membership) -> HttpResponse:
    form = ApiKeyForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        key, secret = ApiKey.issue(membership.tenant, form.cleaned_data["name"], request.user)
        # The secret exists only in this response: it is stored as a digest.
        response = render(
            request, "dashboard/keys/created.html", {"key": key, "secret": secret, "nav": "keys"}
        )
        response["Cache-Control"] = "no-store"
        return response
    keys = for_tenant(ApiKey, membership.tenant).order_by("-created_at")
    return render(request, "dashboard/keys/list.html", {"keys": keys, "form": form, "nav": "keys"})


@require_POST
@tenant_view()
def api_key_revoke(request: HttpRequest, membership: Membership, key_id: str) -> HttpResponse:
    key = get_for_tenant_or_404(ApiKey, membership.tenant, public_id=key_id)
    require(membership, Permission.MANAGE)
    key.revoke()
    messages.success(request, f"Key “{key.name}” revoked: requests with it now answer 401.")
    return redirect("dashboard:api_key_list")
