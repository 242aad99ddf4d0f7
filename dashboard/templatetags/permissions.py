"""Template filters for role checks: ``{% if membership|allows:"audit_log" %}``."""

from __future__ import annotations

from django import template

from tenancy.models import Membership
from tenancy.roles import Permission

register = template.Library()


@register.filter
def allows(membership: Membership | None, permission: str) -> bool:
    """Whether the membership's role grants the permission (False without a membership)."""
    return membership is not None and membership.allows(Permission(permission))
