"""Members and invitations: who belongs to the tenant, in which role, and joining it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from dashboard.access import require, tenant_view
from dashboard.forms.tenancy import InvitationLoginForm, InviteForm, PasswordPairForm, RoleForm
from dashboard.views.accounts import log_in
from tenancy import actions
from tenancy.actions import InvitationNotFound, InvitationUnusable, TenancyError
from tenancy.current import switch_tenant
from tenancy.models import Invitation, Membership
from tenancy.roles import Permission, Role
from tenancy.scoping import for_tenant, get_for_tenant_or_404


def _members_page(
    request: HttpRequest, membership: Membership, form: InviteForm, status: int = 200
) -> HttpResponse:
    tenant = membership.tenant
    members = for_tenant(Membership, tenant).select_related("user").order_by("user__email")
    invitations = for_tenant(Invitation, tenant).filter(
        accepted_at__isnull=True, expires_at__gt=timezone.now()
    )
    is_owner = membership.role == Role.OWNER
    owner_count = sum(member.role == Role.OWNER for member in members)
    rows = [
        {
            "member": member,
            "is_you": member.pk == membership.pk,
            # Admins see owners' rows read-only: only an owner may touch an owner.
            "can_change": is_owner or member.role != Role.OWNER,
            "is_last_owner": member.role == Role.OWNER and owner_count == 1,
        }
        for member in members
    ]
    context = {
        "rows": rows,
        "invitations": invitations,
        "form": form,
        "role_choices": [(role, Role(role).label) for role in actions.grantable_roles(membership)],
        "nav": "members",
    }
    return render(request, "dashboard/members/list.html", context, status=status)


@tenant_view(Permission.MANAGE)
def member_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    return _members_page(request, membership, _invite_form(membership))


@require_POST
@tenant_view(Permission.MANAGE)
def member_invite(request: HttpRequest, membership: Membership) -> HttpResponse:
    form = _invite_form(membership, request.POST)
    if form.is_valid():
        try:
            invitation = actions.invite_member(
                membership,
                form.cleaned_data["email"],
                form.cleaned_data["role"],
                link=invitation_link,
            )
        except TenancyError as error:
            form.add_error(error.field or "email", str(error))
        else:
            messages.success(
                request,
                f"Invitation sent to {invitation.email}. The link works once and expires on "
                f"{invitation.expires_at:%Y-%m-%d}.",
            )
            return redirect("dashboard:member_list")
    return _members_page(request, membership, form)


def _invite_form(membership: Membership, data: Any = None) -> InviteForm:
    return InviteForm(data, roles=actions.grantable_roles(membership))


@require_POST
@tenant_view()
def member_role(request: HttpRequest, membership: Membership, membership_id: int) -> HttpResponse:
    member = get_for_tenant_or_404(
        Membership.objects.select_related("user"), membership.tenant, pk=membership_id
    )
    require(membership, Permission.MANAGE)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles.")
        return redirect("dashboard:member_list")
    role = form.cleaned_data["role"]
    if role == member.role:
        messages.info(request, f"{member.user.email} already is {member.get_role_display()}.")
        return redirect("dashboard:member_list")
    try:
        member = actions.change_role(membership, member, role)
    except TenancyError as error:
        messages.error(request, str(error))
        return redirect("dashboard:member_list")
    messages.success(request, f"{member.user.email} is now {member.get_role_display()}.")
    if member.pk == membership.pk and not member.allows(Permission.MANAGE):
        # You just gave up managing members: this page is no longer yours to see.
        return redirect("dashboard:home")
    return redirect("dashboard:member_list")


@tenant_view()
def member_remove(request: HttpRequest, membership: Membership, membership_id: int) -> HttpResponse:
    """GET asks for confirmation; POST removes the membership (the account stays)."""
    member = get_for_tenant_or_404(
        Membership.objects.select_related("user"), membership.tenant, pk=membership_id
    )
    require(membership, Permission.MANAGE)
    is_you = member.pk == membership.pk
    if request.method != "POST":
        return render(
            request,
            "dashboard/members/confirm_remove.html",
            {"member": member, "is_you": is_you, "nav": "members"},
        )
    try:
        actions.remove_member(membership, member)
    except TenancyError as error:
        messages.error(request, str(error))
        return redirect("dashboard:member_list")
    tenant_name = membership.tenant.name
    if is_you:
        messages.success(request, f"You left {tenant_name}.")
        return redirect("dashboard:home")
    messages.success(request, f"{member.user.email} was removed from {tenant_name}.")
    return redirect("dashboard:member_list")


@tenant_view()
def invitation_revoke(
    request: HttpRequest, membership: Membership, invitation_id: int
) -> HttpResponse:
    """GET asks for confirmation; POST makes the invitation's link stop working."""
    invitation = get_for_tenant_or_404(Invitation, membership.tenant, pk=invitation_id)
    require(membership, Permission.MANAGE)
    if request.method != "POST":
        return render(
            request,
            "dashboard/members/confirm_revoke.html",
            {"invitation": invitation, "nav": "members"},
        )
    try:
        actions.revoke_invitation(membership, invitation)
    except TenancyError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"The invitation of {invitation.email} was revoked.")
    return redirect("dashboard:member_list")


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """Open to anyone holding the link: it was sent to, and proves, the invited e-mail.

    Who is asking decides the page: the invited person logged in (accept), logged out with
    an account (log in here), without an account (choose a password; this works even when
    public sign-up is closed), or someone else logged in (refused).
    """
    try:
        invitation = actions.pending_invitation(token)
    except InvitationNotFound as error:
        return _invalid_invitation(request, error, status=404)
    except InvitationUnusable as error:
        return _invalid_invitation(request, error, status=410)

    step = _acceptance_step(request, invitation)
    data = request.POST if request.method == "POST" else None
    form: InvitationLoginForm | PasswordPairForm | None = None
    if step == "login":
        form = InvitationLoginForm(request, invitation.email, data)
    elif step == "signup":
        form = PasswordPairForm(data, email=invitation.email)
    if data is None or step in {"wrong_user", "member"}:
        return _invitation_page(request, invitation, step, form)
    if form is not None and not form.is_valid():
        return _invitation_page(request, invitation, step, form)

    try:
        if isinstance(form, PasswordPairForm):
            membership = actions.join_with_new_account(token, form.cleaned_data["password1"])
            log_in(request, membership.user)
        else:
            if isinstance(form, InvitationLoginForm):
                log_in(request, form.get_user())
            membership = actions.accept_invitation(token, request.user)
    except InvitationUnusable as error:  # used or revoked while the page was open
        return _invalid_invitation(request, error, status=410)
    except TenancyError as error:
        messages.error(request, str(error))
        return _invitation_page(request, invitation, _acceptance_step(request, invitation), form)
    switch_tenant(request, membership.tenant)
    messages.success(
        request,
        f"Welcome to {membership.tenant.name}: you joined as {membership.get_role_display()}.",
    )
    return redirect("dashboard:home")


def _acceptance_step(request: HttpRequest, invitation: Invitation) -> str:
    user = request.user
    if user.is_authenticated:
        addresses = {address.lower() for address in (user.email, user.get_username()) if address}
        if invitation.email.lower() not in addresses:
            return "wrong_user"
        if Membership.objects.filter(user=user, tenant=invitation.tenant).exists():
            return "member"
        return "accept"
    return "login" if actions.email_taken(invitation.email) else "signup"


def _invitation_page(
    request: HttpRequest, invitation: Invitation, step: str, form: Any
) -> HttpResponse:
    return render(
        request,
        "dashboard/members/invitation.html",
        {"invitation": invitation, "step": step, "form": form},
    )


def _invalid_invitation(request: HttpRequest, error: TenancyError, status: int) -> HttpResponse:
    return render(
        request,
        "dashboard/members/invitation_invalid.html",
        {"reason": str(error), "is_unknown": status == 404},
        status=status,
    )


def invitation_link(token: str) -> str:
    """The address mailed to an invitee: the page that accepts the invitation."""
    return settings.KOE_SITE_URL + reverse("dashboard:invitation_accept", args=[token])
