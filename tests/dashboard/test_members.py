"""Members and invitations: the e-mailed link, single use, and the owner rules."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.utils import timezone

from tenancy.models import Invitation, Membership
from tests.conftest import TenantWorld
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "a-long-unusual-passphrase-42"


def _invite(world: TenantWorld, email: str, role: str = "editor", by: str = "admin") -> str:
    response = world.client_for(by).post("/members/invite/", {"email": email, "role": role})
    assert response.status_code == 302, response.content[:300]
    link = re.search(r"https?://\S+/invite/\S+/", mail.outbox[-1].body)
    assert link is not None
    return urlsplit(link.group(0)).path


def test_an_invited_newcomer_creates_an_account_and_joins(tenant_a: TenantWorld) -> None:
    path = _invite(tenant_a, "newcomer@example.com", "auditor")
    assert mail.outbox[0].to == ["newcomer@example.com"]
    assert tenant_a.tenant.name in mail.outbox[0].subject
    client = Client()
    page = client.get(path)
    assert page.status_code == 200
    assert b"Create account and join" in page.content
    response = client.post(path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    membership = Membership.objects.get(user__email="newcomer@example.com")
    assert (membership.tenant, membership.role) == (tenant_a.tenant, "auditor")
    assert Invitation.objects.get().accepted_at is not None
    # The link worked once.
    assert Client().get(path).status_code == 410


def test_an_existing_user_accepts_while_logged_in(tenant_a: TenantWorld) -> None:
    user = UserFactory(username="pat@example.com")
    path = _invite(tenant_a, "pat@example.com")
    client = Client()
    client.force_login(user)
    assert client.post(path).status_code == 302
    assert Membership.objects.get(user=user).tenant == tenant_a.tenant
    assert client.get("/agents/").context["current_tenant"] == tenant_a.tenant


def test_invitations_work_when_signup_is_closed(tenant_a: TenantWorld, settings) -> None:  # type: ignore[no-untyped-def]
    settings.KOE_PUBLIC_SIGNUP = False
    path = _invite(tenant_a, "invited@example.com")
    assert (
        Client().post(path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD}).status_code
        == 302
    )
    assert Membership.objects.filter(user__email="invited@example.com").exists()


def test_expired_revoked_and_unknown_links_are_refused(tenant_a: TenantWorld) -> None:
    path = _invite(tenant_a, "late@example.com")
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        assert Client().get(path).status_code == 410
    other = _invite(tenant_a, "revoked@example.com")
    invitation = Invitation.objects.get(email="revoked@example.com")
    assert (
        tenant_a.client_for("owner").post(f"/invitations/{invitation.pk}/revoke/").status_code
        == 302
    )
    response = Client().post(other, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 410
    assert not Membership.objects.filter(user__email="revoked@example.com").exists()
    assert Client().get("/invite/not-a-real-token/").status_code == 404


def test_the_link_is_for_the_invited_email_only(tenant_a: TenantWorld) -> None:
    path = _invite(tenant_a, "right@example.com")
    someone_else = UserFactory(username="wrong@example.com")
    client = Client()
    client.force_login(someone_else)
    client.post(path)
    assert not Membership.objects.filter(user=someone_else, tenant=tenant_a.tenant).exists()
    assert Invitation.objects.get().accepted_at is None


def test_inviting_a_member_is_a_field_error(tenant_a: TenantWorld) -> None:
    email = tenant_a.members["editor"].user.email
    response = tenant_a.client_for("admin").post(
        "/members/invite/", {"email": email, "role": "editor"}
    )
    assert response.status_code == 200
    assert "already a member" in " ".join(response.context["form"].errors["email"])
    assert not Invitation.objects.exists()
    assert mail.outbox == []


def test_only_owners_grant_or_touch_the_owner_role(tenant_a: TenantWorld) -> None:
    admin = tenant_a.client_for("admin")
    editor = tenant_a.members["editor"]
    owner = tenant_a.members["owner"]
    admin.post(f"/members/{editor.pk}/role/", {"role": "owner"})
    admin.post(f"/members/{owner.pk}/remove/")
    admin.post("/members/invite/", {"email": "boss@example.com", "role": "owner"})
    editor.refresh_from_db()
    assert editor.role == "editor"
    assert Membership.objects.filter(pk=owner.pk).exists()
    assert not Invitation.objects.exists()
    # An owner may.
    tenant_a.client_for("owner").post(f"/members/{editor.pk}/role/", {"role": "owner"})
    editor.refresh_from_db()
    assert editor.role == "owner"


def test_the_last_owner_cannot_leave_or_be_demoted(tenant_a: TenantWorld) -> None:
    owner = tenant_a.members["owner"]
    client = tenant_a.client_for("owner")
    response = client.post(f"/members/{owner.pk}/role/", {"role": "admin"}, follow=True)
    assert "needs an owner" in response.content.decode()
    client.post(f"/members/{owner.pk}/remove/")
    owner.refresh_from_db()
    assert owner.role == "owner"


def test_admin_changes_roles_and_removes_members(tenant_a: TenantWorld) -> None:
    admin = tenant_a.client_for("admin")
    auditor = tenant_a.members["auditor"]
    admin.post(f"/members/{auditor.pk}/role/", {"role": "editor"})
    auditor.refresh_from_db()
    assert auditor.role == "editor"
    admin.post(f"/members/{auditor.pk}/remove/")
    assert not Membership.objects.filter(pk=auditor.pk).exists()
    assert auditor.user.check_password(PASSWORD)  # the account stays; the membership goes
