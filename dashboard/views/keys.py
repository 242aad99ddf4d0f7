"""Secret API keys: list, create (the secret is shown once, on the response), revoke."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from dashboard.access import require, tenant_view
from dashboard.forms.tenancy import ApiKeyForm
from tenancy import actions
from tenancy.models import ApiKey, Membership
from tenancy.roles import Permission
from tenancy.scoping import for_tenant, get_for_tenant_or_404


def _list_page(request: HttpRequest, membership: Membership, form: ApiKeyForm) -> HttpResponse:
    keys = for_tenant(ApiKey, membership.tenant).select_related("created_by")
    return render(
        request,
        "dashboard/keys/list.html",
        {"keys": keys.order_by("-created_at"), "form": form, "nav": "keys"},
    )


@tenant_view(Permission.MANAGE)
def api_key_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    return _list_page(request, membership, ApiKeyForm())


@tenant_view(Permission.MANAGE)
def api_key_create(request: HttpRequest, membership: Membership) -> HttpResponse:
    form = ApiKeyForm(request.POST if request.method == "POST" else None)
    if not form.is_valid():
        return _list_page(request, membership, form)
    key, secret = actions.issue_api_key(membership, form.cleaned_data["name"])
    # The secret lives only in this response (the database keeps a digest): not in the
    # session, not in a message, and the browser is told not to cache the page.
    response = render(
        request, "dashboard/keys/created.html", {"key": key, "secret": secret, "nav": "keys"}
    )
    response["Cache-Control"] = "no-store"
    return response


@tenant_view()
def api_key_revoke(request: HttpRequest, membership: Membership, key_id: str) -> HttpResponse:
    """GET asks for confirmation; POST revokes (requests with the key then answer 401)."""
    key = get_for_tenant_or_404(ApiKey, membership.tenant, public_id=key_id)
    require(membership, Permission.MANAGE)
    if request.method != "POST":
        return render(request, "dashboard/keys/confirm_revoke.html", {"key": key, "nav": "keys"})
    if not key.is_active:
        messages.info(request, f"Key “{key.name}” was already revoked.")
    else:
        actions.revoke_api_key(membership, key)
        messages.success(request, f"Key “{key.name}” revoked: requests with it now answer 401.")
    return redirect("dashboard:api_key_list")
