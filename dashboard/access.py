"""Dashboard access: login, the current tenant and role checks for views.

``tenant_view(Permission.X)`` resolves the current membership; a user without a tenant is
sent to create one, and a role without the permission gets 403 before the view runs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from tenancy.current import current_membership
from tenancy.models import Membership
from tenancy.roles import Permission

View = Callable[..., HttpResponse]


def tenant_view(permission: Permission = Permission.VIEW) -> Callable[[View], View]:
    """Decorate a view taking (request, membership, ...)."""

    def decorate(view: View) -> View:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            membership = current_membership(request)
            if membership is None:
                return redirect("dashboard:tenant_create")
            require(membership, permission)
            return view(request, membership, *args, **kwargs)

        return wrapper

    return decorate


def require(membership: Membership, permission: Permission) -> None:
    if not membership.allows(permission):
        role = membership.get_role_display()
        raise PermissionDenied(f"Your role ({role}) cannot do this in {membership.tenant.name}.")
