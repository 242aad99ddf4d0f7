"""Roles of a tenant's members and what each may do: the one permission table."""

from __future__ import annotations

from enum import StrEnum

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    EDITOR = "editor", "Editor"
    AUDITOR = "auditor", "Auditor"


class Permission(StrEnum):
    VIEW = "view"  # see agents, tools and calls
    EDIT = "edit"  # create, change, duplicate and delete agents and tools
    MANAGE = "manage"  # members, invitations, keys, provider credentials, tenant settings


ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.ADMIN: frozenset(Permission),
    Role.EDITOR: frozenset({Permission.VIEW, Permission.EDIT}),
    Role.AUDITOR: frozenset({Permission.VIEW}),
}


def role_allows(role: str, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS.get(role, frozenset())
