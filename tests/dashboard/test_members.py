"""Members and invitations: the e-mailed link end to end, the owner rules, who may do what."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.utils import timezone

from tenancy.models import Invitation, Membership, Tenant
from tests.conftest import TenantWorld
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "a-long-unusual-passphrase-42"


def _invite(world: TenantWorld, email: str, role: str = "editor", by: str = "admin") -> str:
    """Invite through the page; returns the path of the link in the e-mail."""
    response = world.client_for(by).post("/members/invite/", {"email": email, "role": role})
    assert response.status_code == 302, response.content[:500]
    link = re.search(r"https?://\S+/invite/\S+/", mail.outbox[-1].body)
    assert link is not None, mail.outbox[-1].body
    return urlsplit(link.group(0)).path


def _state() -> dict[str, list[dict[str, Any]]]:
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in (Tenant, Membership, Invitation)
    }


def _current_tenant(client: Client) -> Tenant:
    return client.get("/agents/").context["current_tenant"]


# --- the members page ----------------------------------------------------------------------


def test_the_page_lists_members_and_pending_invitations(tenant_a: TenantWorld) -> None:
    Invitation.issue(tenant=tenant_a.tenant, email="pending@example.com", role="auditor")
    Invitation.issue(
        tenant=tenant_a.tenant,
        email="expired@example.com",
        role="auditor",
        expires_at=timezone.now() - timedelta(minutes=1),
    )
    response = tenant_a.client_for("owner").get("/members/")
    assert response.status_code == 200
    html = response.content.decode()
    for role, member in tenant_a.members.items():
        assert member.user.email in html
        assert f"role-badge role-{role}" in html
    assert timezone.now().strftime("%Y-%m-%d") in html  # the joined date
    assert "pending@example.com" in html
    assert "expired@example.com" not in html


def test_an_admin_sees_owners_read_only_and_cannot_offer_the_owner_role(
    tenant_a: TenantWorld,
) -> None:
    html = tenant_a.client_for("admin").get("/members/").content.decode()
    owner = tenant_a.members["owner"]
    assert f"/members/{owner.pk}/role/" not in html
    assert "Only an owner can change an owner" in html
    assert 'value="owner"' not in html
    owner_html = tenant_a.client_for("owner").get("/members/").content.decode()
    assert 'value="owner"' in owner_html


def test_no_pending_invitations_says_what_to_do(tenant_a: TenantWorld) -> None:
    html = tenant_a.client_for("owner").get("/members/").content.decode()
    assert "No pending invitations. Invite your team" in html


# --- invitations end to end ----------------------------------------------------------------


def test_an_invited_newcomer_creates_an_account_and_joins(
    tenant_a: TenantWorld, settings: Any
) -> None:
    settings.KOE_SITE_URL = "https://koe.example"
    path = _invite(tenant_a, "newcomer@example.com", "auditor")
    [message] = mail.outbox
    assert message.to == ["newcomer@example.com"]
    assert tenant_a.tenant.name in message.subject
    assert f"https://koe.example{path}" in message.body

    client = Client()
    page = client.get(path)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Join Acme Dental" in html
    assert "auditor" in html
    assert "Create account and join" in html

    bad = client.post(path, {"password1": "short", "password2": "short"})
    assert bad.status_code == 200
    assert "too short" in " ".join(bad.context["form"].errors["password1"])
    assert not Membership.objects.filter(user__email="newcomer@example.com").exists()

    response = client.post(path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    membership = Membership.objects.get(user__email="newcomer@example.com")
    assert (membership.tenant, membership.role) == (tenant_a.tenant, "auditor")
    assert membership.user.check_password(NEW_PASSWORD)
    assert Invitation.objects.get().accepted_by == membership.user
    assert _current_tenant(client) == tenant_a.tenant  # logged in, in the new tenant

    # The link works once.
    assert Client().get(path).status_code == 410
    reuse = Client().post(path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert reuse.status_code == 410
    assert b"can no longer be used" in reuse.content
    assert Membership.objects.filter(user__email="newcomer@example.com").count() == 1


def test_an_existing_user_accepts_while_logged_in_and_lands_in_the_tenant(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    user = tenant_b.members["editor"].user
    path = _invite(tenant_a, user.email, "admin")
    client = tenant_b.client_for("editor")
    page = client.get(path)
    assert b"Accept invitation" in page.content
    assert _current_tenant(client) == tenant_b.tenant

    assert client.post(path).status_code == 302
    assert Membership.objects.get(user=user, tenant=tenant_a.tenant).role == "admin"
    assert _current_tenant(client) == tenant_a.tenant
    assert Membership.objects.get(user=user, tenant=tenant_b.tenant).role == "editor"
    assert client.post(path).status_code == 410


def test_an_existing_user_logs_in_from_the_invitation(tenant_a: TenantWorld) -> None:
    user = UserFactory(username="pat@example.com")
    path = _invite(tenant_a, "Pat@Example.com")
    client = Client()
    assert b"Log in and join" in client.get(path).content

    wrong = client.post(path, {"password": "not-my-password"})
    assert wrong.status_code == 200
    assert "do not match" in wrong.content.decode()
    assert not Membership.objects.filter(user=user).exists()

    # The address comes from the invitation: a posted username is ignored.
    response = client.post(path, {"username": "someone@else.example", "password": PASSWORD})
    assert response.status_code == 302
    assert Membership.objects.get(user=user).tenant == tenant_a.tenant
    assert client.session["_auth_user_id"] == str(user.pk)


def test_invitations_work_when_signup_is_closed(tenant_a: TenantWorld, settings: Any) -> None:
    settings.KOE_PUBLIC_SIGNUP = False
    path = _invite(tenant_a, "invited@example.com")
    client = Client()
    assert client.get("/signup/").status_code == 404
    response = client.post(path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert Membership.objects.filter(user__email="invited@example.com").exists()


def test_expired_revoked_and_unknown_links_are_refused(tenant_a: TenantWorld) -> None:
    late = _invite(tenant_a, "late@example.com")
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        response = Client().post(late, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
        assert response.status_code == 410
        assert b"expired" in response.content

    revoked = _invite(tenant_a, "revoked@example.com")
    invitation = Invitation.objects.get(email="revoked@example.com")
    admin = tenant_a.client_for("admin")
    assert admin.get(f"/invitations/{invitation.pk}/revoke/").status_code == 200  # confirm
    assert Client().get(revoked).status_code == 200  # still works until confirmed
    response = admin.post(f"/invitations/{invitation.pk}/revoke/", follow=True)
    assert "was revoked" in response.content.decode()
    assert "revoked@example.com" not in response.content.decode().split("Pending invitations")[1]
    response = Client().post(revoked, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 410

    unknown = Client().get("/invite/not-a-real-token/")
    assert unknown.status_code == 404
    assert b"not known" in unknown.content
    assert not Membership.objects.filter(
        user__email__in=["late@example.com", "revoked@example.com"]
    )
    assert not Membership.objects.exclude(tenant=tenant_a.tenant).exists()


def test_someone_else_logged_in_cannot_use_the_link(tenant_a: TenantWorld) -> None:
    path = _invite(tenant_a, "right@example.com")
    someone_else = UserFactory(username="wrong@example.com")
    client = Client()
    client.force_login(someone_else)
    page = client.get(path)
    assert "you are logged in as wrong@example.com" in page.content.decode()
    assert b"Accept invitation" not in page.content
    client.post(path)
    assert not Membership.objects.filter(user=someone_else).exists()
    assert Invitation.objects.get().accepted_at is None


def test_a_member_opening_a_link_is_told_so(tenant_a: TenantWorld) -> None:
    user = UserFactory(username="pat@example.com")
    path = _invite(tenant_a, "pat@example.com")
    Membership.objects.create(user=user, tenant=tenant_a.tenant, role="auditor")
    client = Client()
    client.force_login(user)
    assert "already a member of Acme Dental" in client.get(path).content.decode()
    client.post(path)
    assert Membership.objects.get(user=user).role == "auditor"


def test_inviting_a_member_or_a_bad_address_is_a_field_error(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for("admin")
    email = tenant_a.members["editor"].user.email.upper()
    response = client.post("/members/invite/", {"email": email, "role": "editor"})
    assert response.status_code == 200
    assert "already a member" in " ".join(response.context["form"].errors["email"])
    response = client.post("/members/invite/", {"email": "nobody", "role": "editor"})
    assert "valid email" in " ".join(response.context["form"].errors["email"])
    assert not Invitation.objects.exists()
    assert mail.outbox == []


# --- role rules ----------------------------------------------------------------------------


def test_an_admin_cannot_grant_or_touch_the_owner_role(tenant_a: TenantWorld) -> None:
    admin = tenant_a.client_for("admin")
    editor, owner = tenant_a.members["editor"], tenant_a.members["owner"]
    before = _state()

    invite = admin.post("/members/invite/", {"email": "boss@example.com", "role": "owner"})
    assert invite.status_code == 200
    assert "owner is not one of the available choices" in " ".join(
        invite.context["form"].errors["role"]
    )
    promote = admin.post(f"/members/{editor.pk}/role/", {"role": "owner"}, follow=True)
    assert "Only an owner" in promote.content.decode()
    admin.post(f"/members/{owner.pk}/role/", {"role": "auditor"})
    admin.post(f"/members/{owner.pk}/remove/")

    assert _state() == before
    assert mail.outbox == []


def test_an_owner_grants_the_owner_role(tenant_a: TenantWorld) -> None:
    editor = tenant_a.members["editor"]
    client = tenant_a.client_for("owner")
    response = client.post(f"/members/{editor.pk}/role/", {"role": "owner"}, follow=True)
    assert f"{editor.user.email} is now Owner" in response.content.decode()
    editor.refresh_from_db()
    assert editor.role == "owner"
    _invite(tenant_a, "boss@example.com", "owner", by="owner")
    assert Invitation.objects.get().role == "owner"


def test_the_last_owner_cannot_be_demoted_or_removed(tenant_a: TenantWorld) -> None:
    owner = tenant_a.members["owner"]
    client = tenant_a.client_for("owner")
    page = client.get("/members/").content.decode()
    assert "The only owner: make someone else owner" in page
    assert f"/members/{owner.pk}/remove/" not in page
    before = _state()
    response = client.post(f"/members/{owner.pk}/role/", {"role": "admin"}, follow=True)
    assert "Acme Dental needs an owner" in response.content.decode()
    response = client.post(f"/members/{owner.pk}/remove/", follow=True)
    assert "Acme Dental needs an owner" in response.content.decode()
    assert _state() == before


def test_an_admin_changes_roles_and_removes_members(tenant_a: TenantWorld) -> None:
    admin = tenant_a.client_for("admin")
    auditor = tenant_a.members["auditor"]
    admin.post(f"/members/{auditor.pk}/role/", {"role": "editor"})
    auditor.refresh_from_db()
    assert auditor.role == "editor"

    confirm = admin.get(f"/members/{auditor.pk}/remove/")
    assert confirm.status_code == 200
    assert f"Remove {auditor.user.email} from Acme Dental?" in confirm.content.decode()
    assert Membership.objects.filter(pk=auditor.pk).exists()
    response = admin.post(f"/members/{auditor.pk}/remove/", follow=True)
    assert "was removed from Acme Dental" in response.content.decode()
    assert not Membership.objects.filter(pk=auditor.pk).exists()
    assert auditor.user.check_password(PASSWORD)  # the account stays; the membership goes


def test_an_invalid_role_changes_nothing(tenant_a: TenantWorld) -> None:
    editor = tenant_a.members["editor"]
    response = tenant_a.client_for("owner").post(
        f"/members/{editor.pk}/role/", {"role": "emperor"}, follow=True
    )
    assert "Choose one of the roles" in response.content.decode()
    editor.refresh_from_db()
    assert editor.role == "editor"
    assert tenant_a.client_for("owner").get(f"/members/{editor.pk}/role/").status_code == 405


def test_leaving_or_demoting_yourself_goes_home(tenant_a: TenantWorld) -> None:
    admin = tenant_a.members["admin"]
    client = tenant_a.client_for("admin")
    response = client.post(f"/members/{admin.pk}/role/", {"role": "editor"})
    assert response["Location"] == "/"
    admin.refresh_from_db()
    assert admin.role == "editor"

    editor = tenant_a.members["editor"]
    owner_client = tenant_a.client_for("owner")
    owner_client.post(f"/members/{editor.pk}/role/", {"role": "admin"})
    leaver = tenant_a.client_for("editor")  # an admin now
    assert "Leave Acme Dental?" in leaver.get(f"/members/{editor.pk}/remove/").content.decode()
    response = leaver.post(f"/members/{editor.pk}/remove/")
    assert response["Location"] == "/"
    assert leaver.get("/")["Location"] == "/tenants/new/"


def test_revoking_an_accepted_invitation_is_refused(tenant_a: TenantWorld) -> None:
    path = _invite(tenant_a, "new@example.com")
    Client().post(path, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    invitation = Invitation.objects.get()
    client = tenant_a.client_for("owner")
    assert b"already accepted" in client.get(f"/invitations/{invitation.pk}/revoke/").content
    response = client.post(f"/invitations/{invitation.pk}/revoke/", follow=True)
    assert "remove the member instead" in response.content.decode()
    assert Membership.objects.filter(user__email="new@example.com").exists()


# --- who may do what -------------------------------------------------------------------------


def _object_requests(world: TenantWorld) -> list[tuple[str, str, dict[str, str]]]:
    """The requests naming one of the world's objects by its id."""
    invitation, _ = Invitation.issue(tenant=world.tenant, email="x@example.com", role="editor")
    target = world.members["auditor"].pk
    return [
        ("POST", f"/members/{target}/role/", {"role": "admin"}),
        ("GET", f"/members/{target}/remove/", {}),
        ("POST", f"/members/{target}/remove/", {}),
        ("GET", f"/invitations/{invitation.pk}/revoke/", {}),
        ("POST", f"/invitations/{invitation.pk}/revoke/", {}),
    ]


@pytest.mark.parametrize("role", ["editor", "auditor"])
def test_editors_and_auditors_are_forbidden_everywhere(tenant_a: TenantWorld, role: str) -> None:
    requests = [
        ("GET", "/members/", {}),
        ("POST", "/members/invite/", {"email": "new@example.com", "role": "editor"}),
        *_object_requests(tenant_a),
    ]
    client = tenant_a.client_for(role)
    before = _state()
    for method, url, data in requests:
        response = client.get(url) if method == "GET" else client.post(url, data)
        assert response.status_code == 403, (method, url)
    assert _state() == before
    assert mail.outbox == []


@pytest.mark.parametrize("role", ["owner", "admin", "editor", "auditor"])
def test_another_tenants_members_and_invitations_are_not_found(
    tenant_a: TenantWorld, tenant_b: TenantWorld, role: str
) -> None:
    requests = _object_requests(tenant_a)
    client = tenant_b.client_for(role)
    before = _state()
    for method, url, data in requests:
        response = client.get(url) if method == "GET" else client.post(url, data)
        assert response.status_code == 404, (method, url)
    assert _state() == before
