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
    EXPORT = "export"  # export calls and download recordings
    HOLD = "hold"  # set and lift legal hold (auditors only where the tenant allows it)
    AUDIT_LOG = "audit_log"  # read the access log
    # A phone call's end user is the caller's (or callee's) own number: personal data that
    # reviewing calls does not need, so members without this see it masked (the dashboard,
    # and the exports they request; calls.end_users decides).
    PHONE_NUMBERS = "phone_numbers"


ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.ADMIN: frozenset(Permission),
    # Editors build agents and auditors review calls: neither needs to know who called,
    # so neither has PHONE_NUMBERS.
    Role.EDITOR: frozenset({Permission.VIEW, Permission.EDIT}),
    # Auditors read and export, and change nothing (legal hold: see Membership.allows).
    Role.AUDITOR: frozenset({Permission.VIEW, Permission.EXPORT}),
}


def role_allows(role: str, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS.get(role, frozenset())
