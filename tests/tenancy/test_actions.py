"""The tenancy actions without HTTP: owner rules and single-use invitations."""

from __future__ import annotations

import pytest

from tenancy import actions
from tenancy.actions import TenancyError
from tenancy.models import Invitation, Membership
from tests.conftest import TenantWorld
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_create_tenant_makes_its_creator_owner() -> None:
    user = UserFactory()
    tenant = actions.create_tenant(user, "Café Nord", "Europe/Oslo")
    assert Membership.objects.get(user=user, tenant=tenant).role == "owner"


def test_an_invitation_is_accepted_once(tenant_a: TenantWorld) -> None:
    invitation = actions.invite_member(tenant_a.members["owner"], "Kim@Example.com", "editor")
    assert invitation.email == "kim@example.com"
    kim = UserFactory(username="kim@example.com")
    actions.accept_invitation(invitation, kim)
    with pytest.raises(TenancyError, match="already used"):
        actions.accept_invitation(Invitation.objects.get(pk=invitation.pk), kim)
    assert Membership.objects.filter(user=kim).count() == 1


def test_owner_rules(tenant_a: TenantWorld) -> None:
    owner, admin, editor = (tenant_a.members[r] for r in ("owner", "admin", "editor"))
    with pytest.raises(TenancyError, match="Only an owner"):
        actions.change_role(admin, editor, "owner")
    with pytest.raises(TenancyError, match="Only an owner"):
        actions.remove_member(admin, owner)
    with pytest.raises(TenancyError, match="needs an owner"):
        actions.change_role(owner, owner, "admin")
    actions.change_role(owner, editor, "owner")
    actions.change_role(owner, owner, "admin")  # another owner exists now
    owner.refresh_from_db()
    assert owner.role == "admin"
