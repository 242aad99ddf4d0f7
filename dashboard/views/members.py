"""Members and invitations: who belongs to the tenant, in which role, and joining it."""

from __future__ import annotations

from django.contrib import auth, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from dashboard.access import require, tenant_view
from dashboard.forms.tenancy import InviteForm, PasswordPairForm, RoleForm
from tenancy import actions
from tenancy.actions import TenancyError
from tenancy.current import switch_tenant
from tenancy.models import Invitation, Membership
from tenancy.roles import Permission
from tenancy.scoping import for_tenant, get_for_tenant_or_404


def _members_page(request: HttpRequest, membership: Membership, form: InviteForm) -> HttpResponse:
    tenant = membership.tenant
    members = for_tenant(Membership, tenant).select_related("user").order_by("user__email")
    invitations = for_tenant(Invitation, tenant).filter(
        accepted_at__isnull=True, expires_at__gt=timezone.now()
    )
    return render(
        request,
        "dashboard/members/list.html",
        {
            "members": members,
            "invitations": invitations,
            "form": form,
            "role_form": RoleForm(),
            "nav": "members",
        },
    )


@tenant_view(Permission.MANAGE)
def member_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    return _members_page(request, membership, InviteForm())


@require_POST
@tenant_view(Permission.MANAGE)
def member_invite(request: HttpRequest, membership: Membership) -> HttpResponse:
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invitation = actions.invite_member(
                membership, form.cleaned_data["email"], form.cleaned_data["role"]
            )
        except TenancyError as error:
            form.add_error("email", str(error))
        else:
            messages.success(request, f"Invitation sent to {invitation.email}.")
            return redirect("dashboard:member_list")
    return _members_page(request, membership, form)


@require_POST
@tenant_view()
def member_role(request: HttpRequest, membership: Membership, membership_id: int) -> HttpResponse:
    member = get_for_tenant_or_404(Membership, membership.tenant, pk=membership_id)
    require(membership, Permission.MANAGE)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles.")
        return redirect("dashboard:member_list")
    try:
        actions.change_role(membership, member, form.cleaned_data["role"])
    except TenancyError as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request, f"{member.user.email} is now {member.get_role_display().lower()}."
        )
    return redirect("dashboard:member_list")


@require_POST
@tenant_view()
def member_remove(request: HttpRequest, membership: Membership, membership_id: int) -> HttpResponse:
    member = get_for_tenant_or_404(Membership, membership.tenant, pk=membership_id)
    require(membership, Permission.MANAGE)
    try:
        actions.remove_member(membership, member)
    except TenancyError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"{member.user.email} was removed from {membership.tenant.name}.")
    return redirect("dashboard:member_list")


@require_POST
@tenant_view()
def invitation_revoke(
    request: HttpRequest, membership: Membership, invitation_id: int
) -> HttpResponse:
    invitation = get_for_tenant_or_404(Invitation, membership.tenant, pk=invitation_id)
    require(membership, Permission.MANAGE)
    actions.revoke_invitation(invitation)
    messages.success(request, f"The invitation of {invitation.email} was revoked.")
    return redirect("dashboard:member_list")


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """Open to anyone holding the link: it proves the e-mail it was sent to."""
    invitation = actions.find_invitation(token)
    if invitation is None:
        return render(
            request, "dashboard/members/invitation_invalid.html", {"reason": "unknown"}, status=404
        )
    if not invitation.is_pending:
        return render(
            request, "dashboard/members/invitation_invalid.html", {"reason": "used"}, status=410
        )
    user = request.user
    needs_account = not user.is_authenticated and not actions.email_taken(invitation.email)
    form = PasswordPairForm(request.POST if request.method == "POST" and needs_account else None)
    if request.method == "POST":
        if needs_account:
            if not form.is_valid():
                return _invitation_page(request, invitation, form, needs_account)
            user = actions.create_user(invitation.email, form.cleaned_data["password1"])
            auth.login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        elif not user.is_authenticated:
            return redirect(f"{reverse('dashboard:login')}?next={request.path}")
        try:
            membership = actions.accept_invitation(invitation, user)
        except TenancyError as error:
            messages.error(request, str(error))
            return _invitation_page(request, invitation, form, needs_account)
        switch_tenant(request, membership.tenant)
        messages.success(request, f"Welcome to {membership.tenant.name}.")
        return redirect("dashboard:agent_list")
    return _invitation_page(request, invitation, form, needs_account)


def _invitation_page(
    request: HttpRequest, invitation: Invitation, form: PasswordPairForm, needs_account: bool
) -> HttpResponse:
    return render(
        request,
        "dashboard/members/invitation.html",
        {"invitation": invitation, "form": form, "needs_account": needs_account},
    )
