"""Template context: the current tenant and role, for the dashboard's navigation."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from tenancy.current import current_membership
from tenancy.models import Membership
from tenancy.roles import Permission


def current_tenant(request: HttpRequest) -> dict[str, Any]:
    membership = current_membership(request)
    if membership is None:
        return {}
    other_memberships = (
        Membership.objects.filter(user=membership.user)
        .exclude(pk=membership.pk)
        .select_related("tenant")
        .order_by("tenant__name")
    )
    return {
        "membership": membership,
        "current_tenant": membership.tenant,
        "can_edit": membership.allows(Permission.EDIT),
        "can_manage": membership.allows(Permission.MANAGE),
        "other_memberships": other_memberships,
    }
