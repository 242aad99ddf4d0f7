"""The dashboard's current tenant: chosen in the session, resolved once per request."""

from __future__ import annotations

from django.http import HttpRequest

from tenancy.models import Membership, Tenant

SESSION_KEY = "koe_tenant"
_CACHE_ATTRIBUTE = "_koe_membership"


def current_membership(request: HttpRequest) -> Membership | None:
    """The membership of the tenant chosen in the session, else the user's oldest one."""
    if hasattr(request, _CACHE_ATTRIBUTE):
        return getattr(request, _CACHE_ATTRIBUTE)
    membership = None
    if request.user.is_authenticated:
        memberships = Membership.objects.filter(user=request.user).select_related("tenant")
        chosen = request.session.get(SESSION_KEY)
        if chosen:
            membership = memberships.filter(tenant__public_id=chosen).first()
        if membership is None:
            membership = memberships.order_by("created_at", "pk").first()
    setattr(request, _CACHE_ATTRIBUTE, membership)
    return membership


def switch_tenant(request: HttpRequest, tenant: Tenant) -> None:
    request.session[SESSION_KEY] = tenant.public_id
    if hasattr(request, _CACHE_ATTRIBUTE):
        delattr(request, _CACHE_ATTRIBUTE)
