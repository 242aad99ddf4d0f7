"""State changes of tenants, members, invitations and API keys: plain functions the UI calls.

Refusals are TenancyError (or a subclass) carrying a sentence for the person who asked and,
where it belongs to one, the name of the form field it is about.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from tenancy.models import ApiKey, Invitation, Membership, Tenant, hash_secret
from tenancy.roles import Permission, Role

logger = logging.getLogger(__name__)


class TenancyError(Exception):
    """A refused change, e.g. removing a tenant's last owner."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvitationNotFound(TenancyError):
    """No invitation has this token (mistyped or truncated link)."""


class InvitationUnusable(TenancyError):
    """The invitation exists but was already used, was revoked or has expired."""


# --- users ---------------------------------------------------------------------------------


def normalize_email(email: str) -> str:
    return email.strip().lower()


def find_user(email: str) -> Any | None:
    """The account of an e-mail address, matched without regard to case."""
    email = email.strip()
    users = get_user_model().objects.filter(username__iexact=email).order_by("pk")
    # Accounts made outside the dashboard (admin, createsuperuser) may keep their case.
    return users.filter(username=email).first() or users.first()


def email_taken(email: str) -> bool:
    return find_user(email) is not None


def create_user(email: str, password: str) -> Any:
    """A dashboard account: the username is the e-mail, lower-cased, unique regardless of case."""
    email = normalize_email(email)
    if email_taken(email):
        raise TenancyError("An account with this e-mail exists: log in instead.", field="email")
    return get_user_model().objects.create_user(username=email, email=email, password=password)


def _addresses_of(user: Any) -> set[str]:
    return {address.lower() for address in (user.email, user.username) if address}


# --- tenants -------------------------------------------------------------------------------


def create_tenant(user: Any, name: str, time_zone: str = "UTC") -> Tenant:
    """A new tenant whose creator is its first owner."""
    tenant = Tenant(name=name.strip(), time_zone=time_zone)
    tenant.full_clean()
    with transaction.atomic():
        tenant.save()
        Membership.objects.create(user=user, tenant=tenant, role=Role.OWNER)
    return tenant


# --- members -------------------------------------------------------------------------------


def grantable_roles(actor: Membership) -> list[str]:
    """The roles this member may give to others."""
    if actor.role == Role.OWNER:
        return list(Role.values)
    return [role for role in Role.values if role != Role.OWNER]


def change_role(actor: Membership, member: Membership, role: str) -> Membership:
    if role not in Role.values:
        raise TenancyError(f"“{role}” is not a role.", field="role")
    with transaction.atomic():
        actor, member = _lock_pair(actor, member)
        _check_owner_rules(actor, member, new_role=role)
        member.role = role
        member.save(update_fields=["role"])
    return member


def remove_member(actor: Membership, member: Membership) -> None:
    """Take a member out of the tenant; the person's account and other tenants stay."""
    with transaction.atomic():
        actor, member = _lock_pair(actor, member)
        _check_owner_rules(actor, member, new_role=None)
        member.delete()


def _lock_pair(actor: Membership, member: Membership) -> tuple[Membership, Membership]:
    # Re-read both under a lock: the roles on the page may be stale, and two owners
    # demoting each other at once must not leave the tenant with none.
    if member.tenant_id != actor.tenant_id:
        raise TenancyError("This person is not a member of your tenant.")
    _require_manage(actor)
    locked = Membership.objects.select_for_update().select_related("user", "tenant")
    owners = locked.filter(tenant_id=actor.tenant_id, role=Role.OWNER)
    list(owners)  # lock the owners' rows too, for the last-owner count
    return locked.get(pk=actor.pk), locked.get(pk=member.pk)


def _check_owner_rules(actor: Membership, member: Membership, new_role: str | None) -> None:
    touches_owner = member.role == Role.OWNER or new_role == Role.OWNER
    if touches_owner and actor.role != Role.OWNER:
        raise TenancyError("Only an owner can grant, change or remove the owner role.", "role")
    if member.role == Role.OWNER and new_role != Role.OWNER:
        owners = Membership.objects.filter(tenant_id=member.tenant_id, role=Role.OWNER)
        if not owners.exclude(pk=member.pk).exists():
            raise TenancyError(
                f"{member.tenant.name} needs an owner: make someone else owner before "
                f"{'demoting' if new_role else 'removing'} {member.user.email or member.user}.",
                field="role",
            )


def _require_manage(actor: Membership) -> None:
    if not actor.allows(Permission.MANAGE):
        raise TenancyError(f"Your role ({actor.get_role_display()}) cannot manage members.")


# --- invitations ---------------------------------------------------------------------------


def invite_member(
    actor: Membership, email: str, role: str, *, link: Callable[[str], str]
) -> Invitation:
    """Create an invitation and e-mail its link, ``link(token)`` (the page that accepts it
    is the caller's: the core knows no pages); the token itself is never stored.

    Inviting someone again replaces their pending invitation, so one link at most works.
    """
    _require_manage(actor)
    tenant = actor.tenant
    email = normalize_email(email)
    if role not in grantable_roles(actor):
        raise TenancyError("Only an owner can invite another owner.", field="role")
    members = Membership.objects.filter(tenant=tenant)
    if members.filter(user__username__iexact=email).exists():
        raise TenancyError(f"{email} is already a member of {tenant.name}.", field="email")
    with transaction.atomic():
        _pending(Invitation.objects.filter(tenant=tenant, email__iexact=email)).update(
            expires_at=timezone.now()
        )
        invitation, token = Invitation.issue(
            tenant=tenant, email=email, role=role, invited_by=actor.user
        )
        try:
            _send_invitation(invitation, link(token))
        except OSError as error:  # smtplib's errors are OSErrors
            logger.warning("Invitation e-mail to %s failed: %s", email, error)
            raise TenancyError(
                "The invitation e-mail could not be sent; nothing was saved. Try again later.",
                field="email",
            ) from error
    return invitation


def _send_invitation(invitation: Invitation, link: str) -> None:
    inviter = getattr(invitation.invited_by, "email", "") or "A colleague"
    tenant = invitation.tenant
    send_mail(
        subject=f"You are invited to {tenant.name} on Koe",
        message=(
            f"{inviter} invited you to join {tenant.name} on Koe as "
            f"{Role(invitation.role).label.lower()}.\n\n"
            f"Accept the invitation here:\n{link}\n\n"
            f"The link works once and expires on {invitation.expires_at:%Y-%m-%d %H:%M} UTC.\n"
            "If you did not expect it, ignore this e-mail."
        ),
        from_email=None,
        recipient_list=[invitation.email],
    )


def _pending(invitations: Any) -> Any:
    return invitations.filter(accepted_at__isnull=True, expires_at__gt=timezone.now())


def find_invitation(token: str) -> Invitation | None:
    return Invitation.objects.select_related("tenant").filter(token_hash=hash_secret(token)).first()


def pending_invitation(token: str) -> Invitation:
    """The invitation a link stands for, if it can still be accepted."""
    return _check_pending(find_invitation(token))


def _check_pending(invitation: Invitation | None) -> Invitation:
    if invitation is None:
        raise InvitationNotFound(
            "This invitation link is not known. Check that you copied all of it, "
            "or ask for a new invitation."
        )
    if not invitation.is_pending:
        raise InvitationUnusable(
            "This invitation was already used, was revoked or has expired. "
            "Ask an owner or admin of the tenant to invite you again."
        )
    return invitation


def _lock_pending(token: str) -> Invitation:
    # The lock makes an invitation single-use even when accepted twice at the same moment.
    invitation = (
        Invitation.objects.select_for_update()
        .select_related("tenant")
        .filter(token_hash=hash_secret(token))
        .first()
    )
    return _check_pending(invitation)


def accept_invitation(token: str, user: Any) -> Membership:
    """Join the tenant with the invited role; the link works once, for the invited e-mail."""
    with transaction.atomic():
        invitation = _lock_pending(token)
        if invitation.email.lower() not in _addresses_of(user):
            raise TenancyError(
                f"This invitation is for {invitation.email}; you are logged in as "
                f"{user.email or user.username}. Log out and open the link again."
            )
        return _join(invitation, user)


def join_with_new_account(token: str, password: str) -> Membership:
    """Create the invited e-mail's account and join, even when public sign-up is closed."""
    with transaction.atomic():
        invitation = _lock_pending(token)
        user = create_user(invitation.email, password)
        return _join(invitation, user)


def _join(invitation: Invitation, user: Any) -> Membership:
    # Refused rather than merged: invite_member never invites a member, so this only
    # happens when the person joined another way since; the invitation stays unused.
    if Membership.objects.filter(tenant=invitation.tenant, user=user).exists():
        raise TenancyError(f"You are already a member of {invitation.tenant.name}.")
    membership = Membership.objects.create(
        user=user, tenant=invitation.tenant, role=invitation.role
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership


def revoke_invitation(actor: Membership, invitation: Invitation) -> None:
    _require_manage(actor)
    if invitation.tenant_id != actor.tenant_id:
        raise TenancyError("This invitation belongs to another tenant.")
    if invitation.accepted_at is not None:
        raise TenancyError(
            f"{invitation.email} already accepted this invitation: remove the member instead."
        )
    # Expiring it now kills the link and keeps the record of who was invited.
    _pending(Invitation.objects.filter(pk=invitation.pk)).update(expires_at=timezone.now())


# --- API keys ------------------------------------------------------------------------------


def issue_api_key(actor: Membership, name: str) -> tuple[ApiKey, str]:
    """A new secret key of the actor's tenant; the secret is returned once, never stored."""
    _require_manage(actor)
    return ApiKey.issue(actor.tenant, name.strip(), created_by=actor.user)


def revoke_api_key(actor: Membership, key: ApiKey) -> None:
    _require_manage(actor)
    if key.tenant_id != actor.tenant_id:
        raise TenancyError("This key belongs to another tenant.")
    key.revoke()
