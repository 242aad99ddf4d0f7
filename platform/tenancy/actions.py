"""State changes of tenants and their members: plain functions the dashboard calls.

Refusals are TenancyError with a sentence for the person who asked.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from tenancy.models import Invitation, Membership, Tenant, hash_secret
from tenancy.roles import Role


class TenancyError(Exception):
    """A refused change, e.g. removing a tenant's last owner."""


def create_tenant(user: Any, name: str, time_zone: str = "UTC") -> Tenant:
    with transaction.atomic():
        tenant = Tenant.objects.create(name=name, time_zone=time_zone)
        Membership.objects.create(user=user, tenant=tenant, role=Role.OWNER)
    return tenant


def create_user(email: str, password: str) -> Any:
    email = email.strip().lower()
    return get_user_model().objects.create_user(username=email, email=email, password=password)


def email_taken(email: str) -> bool:
    return get_user_model().objects.filter(username__iexact=email.strip()).exists()


def invite_member(actor: Membership, email: str, role: str) -> Invitation:
    """Create an invitation and e-mail its link; the token itself is never stored."""
    tenant, invited_by = actor.tenant, actor.user
    email = email.strip().lower()
    if role == Role.OWNER and actor.role != Role.OWNER:
        raise TenancyError("Only an owner can invite another owner.")
    if Membership.objects.filter(tenant=tenant, user__username__iexact=email).exists():
        raise TenancyError(f"{email} is already a member of {tenant.name}.")
    invitation, token = Invitation.issue(
        tenant=tenant, email=email, role=role, invited_by=invited_by
    )
    link = settings.KOE_SITE_URL + reverse("dashboard:invitation_accept", args=[token])
    inviter = getattr(invited_by, "email", "") or "A colleague"
    send_mail(
        subject=f"You are invited to {tenant.name} on Koe",
        message=(
            f"{inviter} invited you to join {tenant.name} on Koe as "
            f"{Role(role).label.lower()}.\n\nAccept the invitation here:\n{link}\n\n"
            f"The link works once and expires on {invitation.expires_at:%Y-%m-%d %H:%M} UTC."
        ),
        from_email=None,
        recipient_list=[email],
    )
    return invitation


def find_invitation(token: str) -> Invitation | None:
    return Invitation.objects.select_related("tenant").filter(token_hash=hash_secret(token)).first()


def accept_invitation(invitation: Invitation, user: Any) -> Membership:
    """Join the tenant with the invited role; an invitation works once."""
    with transaction.atomic():
        locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if not locked.is_pending:
            raise TenancyError("This invitation was already used, revoked or has expired.")
        if user.email.lower() != locked.email.lower():
            raise TenancyError(
                f"This invitation is for {locked.email}; you are logged in as {user.email}."
            )
        if Membership.objects.filter(tenant=locked.tenant, user=user).exists():
            raise TenancyError(f"You are already a member of {locked.tenant.name}.")
        membership = Membership.objects.create(user=user, tenant=locked.tenant, role=locked.role)
        locked.accepted_at = timezone.now()
        locked.accepted_by = user
        locked.save(update_fields=["accepted_at", "accepted_by"])
    return membership


def revoke_invitation(invitation: Invitation) -> None:
    # Expiring it now makes the link dead while keeping the record of who was invited.
    Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).update(
        expires_at=timezone.now()
    )


def change_role(actor: Membership, member: Membership, role: str) -> None:
    _check_owner_rules(actor, member, new_role=role)
    member.role = role
    member.save(update_fields=["role"])


def remove_member(actor: Membership, member: Membership) -> None:
    _check_owner_rules(actor, member, new_role=None)
    member.delete()


def _check_owner_rules(actor: Membership, member: Membership, new_role: str | None) -> None:
    touches_owner = member.role == Role.OWNER or new_role == Role.OWNER
    if touches_owner and actor.role != Role.OWNER:
        raise TenancyError("Only an owner can grant, change or remove the owner role.")
    if member.role == Role.OWNER and new_role != Role.OWNER:
        owners = Membership.objects.filter(tenant=member.tenant, role=Role.OWNER).count()
        if owners <= 1:
            raise TenancyError(
                "A tenant needs an owner: make someone else owner before changing this one."
            )
