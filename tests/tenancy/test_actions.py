"""The tenancy actions without HTTP: tenants, owner rules, single-use invitations, keys."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from tenancy import actions
from tenancy.actions import InvitationNotFound, InvitationUnusable, TenancyError
from tenancy.models import ApiKey, Invitation, Membership, Tenant, hash_secret
from tests.conftest import TenantWorld
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "a-long-unusual-passphrase-42"


def accept_link(token: str) -> str:
    """The page that accepts an invitation is the dashboard's; the core mails what it gets."""
    return f"https://koe.example/invite/{token}/"


def _token_from_mail() -> str:
    match = re.search(r"/invite/([^/\s]+)/", mail.outbox[-1].body)
    assert match is not None, mail.outbox[-1].body
    return match.group(1)


def test_create_tenant_makes_its_creator_owner() -> None:
    user = UserFactory()
    tenant = actions.create_tenant(user, "  Café Nord ", "Europe/Oslo")
    assert (tenant.name, tenant.time_zone) == ("Café Nord", "Europe/Oslo")
    assert Membership.objects.get(user=user, tenant=tenant).role == "owner"


def test_create_tenant_refuses_an_unknown_time_zone() -> None:
    with pytest.raises(ValidationError, match="IANA"):
        actions.create_tenant(UserFactory(), "Café Nord", "Mars/Olympus")
    assert not Tenant.objects.exists()


def test_create_user_is_unique_regardless_of_case() -> None:
    user = actions.create_user(" Ada@Example.COM ", NEW_PASSWORD)
    assert (user.username, user.email) == ("ada@example.com", "ada@example.com")
    assert user.check_password(NEW_PASSWORD)
    with pytest.raises(TenancyError, match="log in instead") as refused:
        actions.create_user("ADA@example.com", NEW_PASSWORD)
    assert refused.value.field == "email"


def test_invite_member_mails_a_link_and_stores_only_its_digest(tenant_a: TenantWorld) -> None:
    invitation = actions.invite_member(
        tenant_a.members["admin"], " Kim@Example.com ", "editor", link=accept_link
    )
    assert (invitation.email, invitation.role) == ("kim@example.com", "editor")
    assert invitation.invited_by == tenant_a.members["admin"].user
    [message] = mail.outbox
    assert message.to == ["kim@example.com"]
    assert "Acme Dental" in message.subject
    token = _token_from_mail()
    assert f"https://koe.example/invite/{token}/" in message.body
    assert invitation.token_hash == hash_secret(token)
    assert token not in repr(list(Invitation.objects.values()))


def test_inviting_again_replaces_the_pending_invitation(tenant_a: TenantWorld) -> None:
    owner = tenant_a.members["owner"]
    actions.invite_member(owner, "kim@example.com", "editor", link=accept_link)
    first_token = _token_from_mail()
    actions.invite_member(owner, "KIM@example.com", "admin", link=accept_link)
    second_token = _token_from_mail()
    with pytest.raises(InvitationUnusable):
        actions.pending_invitation(first_token)
    assert actions.pending_invitation(second_token).role == "admin"


def test_invite_refusals(tenant_a: TenantWorld) -> None:
    admin = tenant_a.members["admin"]
    with pytest.raises(TenancyError, match="Only an owner") as refused:
        actions.invite_member(admin, "boss@example.com", "owner", link=accept_link)
    assert refused.value.field == "role"
    member_email = tenant_a.members["auditor"].user.email.upper()
    with pytest.raises(TenancyError, match="already a member") as refused:
        actions.invite_member(admin, member_email, "editor", link=accept_link)
    assert refused.value.field == "email"
    with pytest.raises(TenancyError, match="cannot manage"):
        actions.invite_member(
            tenant_a.members["editor"], "someone@example.com", "editor", link=accept_link
        )
    assert not Invitation.objects.exists()
    assert mail.outbox == []


def test_a_failed_email_saves_no_invitation(
    tenant_a: TenantWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(**kwargs: Any) -> None:
        raise ConnectionRefusedError("no SMTP server")

    monkeypatch.setattr(actions, "send_mail", refuse)
    with pytest.raises(TenancyError, match="could not be sent"):
        actions.invite_member(
            tenant_a.members["owner"], "kim@example.com", "editor", link=accept_link
        )
    assert not Invitation.objects.exists()


def test_an_invitation_is_accepted_once(tenant_a: TenantWorld) -> None:
    actions.invite_member(tenant_a.members["owner"], "kim@example.com", "auditor", link=accept_link)
    token = _token_from_mail()
    kim = UserFactory(username="kim@example.com")
    membership = actions.accept_invitation(token, kim)
    assert (membership.tenant, membership.role) == (tenant_a.tenant, "auditor")
    invitation = Invitation.objects.get()
    assert (invitation.accepted_by, invitation.accepted_at is not None) == (kim, True)
    with pytest.raises(InvitationUnusable, match="already used"):
        actions.accept_invitation(token, kim)
    assert Membership.objects.filter(user=kim).count() == 1


def test_unknown_expired_and_revoked_tokens_are_refused(tenant_a: TenantWorld) -> None:
    owner = tenant_a.members["owner"]
    kim = UserFactory(username="kim@example.com")
    with pytest.raises(InvitationNotFound):
        actions.accept_invitation("no-such-token", kim)

    actions.invite_member(owner, "kim@example.com", "editor", link=accept_link)
    token = _token_from_mail()
    with (
        time_machine.travel(timezone.now() + timedelta(days=8)),
        pytest.raises(InvitationUnusable, match="expired"),
    ):
        actions.accept_invitation(token, kim)

    actions.revoke_invitation(owner, Invitation.objects.get())
    with pytest.raises(InvitationUnusable):
        actions.accept_invitation(token, kim)
    assert not Membership.objects.filter(user=kim).exists()


def test_an_invitation_is_for_the_invited_email_only(tenant_a: TenantWorld) -> None:
    actions.invite_member(
        tenant_a.members["owner"], "right@example.com", "editor", link=accept_link
    )
    token = _token_from_mail()
    someone_else = UserFactory(username="wrong@example.com")
    with pytest.raises(TenancyError, match=r"for right@example\.com"):
        actions.accept_invitation(token, someone_else)
    assert Invitation.objects.get().accepted_at is None


def test_a_member_cannot_accept_twice(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    # Invited while not a member, then joined another way: refused, the link stays unused.
    owner = tenant_b.members["owner"].user
    actions.invite_member(tenant_a.members["owner"], owner.email, "editor", link=accept_link)
    token = _token_from_mail()
    Membership.objects.create(user=owner, tenant=tenant_a.tenant, role="auditor")
    with pytest.raises(TenancyError, match="already a member"):
        actions.accept_invitation(token, owner)
    assert Membership.objects.get(user=owner, tenant=tenant_a.tenant).role == "auditor"
    assert Invitation.objects.get().accepted_at is None


def test_join_with_new_account_creates_the_invited_account(tenant_a: TenantWorld) -> None:
    actions.invite_member(tenant_a.members["owner"], "new@example.com", "editor", link=accept_link)
    token = _token_from_mail()
    membership = actions.join_with_new_account(token, NEW_PASSWORD)
    assert membership.user.username == "new@example.com"
    assert membership.user.check_password(NEW_PASSWORD)
    with pytest.raises(InvitationUnusable):
        actions.join_with_new_account(token, NEW_PASSWORD)


def test_revoking_an_accepted_invitation_is_refused(tenant_a: TenantWorld) -> None:
    owner = tenant_a.members["owner"]
    actions.invite_member(owner, "kim@example.com", "editor", link=accept_link)
    actions.accept_invitation(_token_from_mail(), UserFactory(username="kim@example.com"))
    with pytest.raises(TenancyError, match="remove the member instead"):
        actions.revoke_invitation(owner, Invitation.objects.get())


def test_only_owners_touch_the_owner_role(tenant_a: TenantWorld) -> None:
    owner, admin, editor = (tenant_a.members[role] for role in ("owner", "admin", "editor"))
    with pytest.raises(TenancyError, match="Only an owner"):
        actions.change_role(admin, editor, "owner")
    with pytest.raises(TenancyError, match="Only an owner"):
        actions.change_role(admin, owner, "admin")
    with pytest.raises(TenancyError, match="Only an owner"):
        actions.remove_member(admin, owner)
    with pytest.raises(TenancyError, match="cannot manage"):
        actions.change_role(editor, tenant_a.members["auditor"], "editor")
    assert actions.change_role(owner, editor, "owner").role == "owner"
    assert actions.grantable_roles(owner) == ["owner", "admin", "editor", "auditor"]
    assert actions.grantable_roles(admin) == ["admin", "editor", "auditor"]


def test_the_last_owner_cannot_be_demoted_or_removed(tenant_a: TenantWorld) -> None:
    owner, editor = tenant_a.members["owner"], tenant_a.members["editor"]
    with pytest.raises(TenancyError, match="needs an owner"):
        actions.change_role(owner, owner, "admin")
    with pytest.raises(TenancyError, match="needs an owner"):
        actions.remove_member(owner, owner)
    owner.refresh_from_db()
    assert owner.role == "owner"
    actions.change_role(owner, editor, "owner")
    actions.change_role(owner, owner, "admin")  # another owner exists now
    owner.refresh_from_db()
    assert owner.role == "admin"


def test_roles_are_checked_against_the_database_not_the_page(tenant_a: TenantWorld) -> None:
    # The admin's copy says "editor", but the database says "owner": the rule still holds.
    admin, owner = tenant_a.members["admin"], tenant_a.members["owner"]
    stale = Membership.objects.get(pk=owner.pk)
    stale.role = "editor"
    with pytest.raises(TenancyError, match="Only an owner"):
        actions.remove_member(admin, stale)
    assert Membership.objects.filter(pk=owner.pk).exists()


def test_members_of_another_tenant_are_out_of_reach(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    with pytest.raises(TenancyError, match="not a member of your tenant"):
        actions.remove_member(tenant_a.members["owner"], tenant_b.members["editor"])
    assert Membership.objects.filter(pk=tenant_b.members["editor"].pk).exists()


def test_api_keys_are_issued_and_revoked(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    key, secret = actions.issue_api_key(tenant_a.members["admin"], " reporting ")
    assert (key.tenant, key.name, key.created_by) == (
        tenant_a.tenant,
        "reporting",
        tenant_a.members["admin"].user,
    )
    assert ApiKey.authenticate(secret) == key
    with pytest.raises(TenancyError, match="another tenant"):
        actions.revoke_api_key(tenant_b.members["owner"], key)
    actions.revoke_api_key(tenant_a.members["owner"], key)
    assert ApiKey.authenticate(secret) is None
