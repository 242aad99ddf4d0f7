"""Legal hold on the call page: who may set and lift it, what it records, the tenant toggle."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from audit.models import AccessAction, AccessLog
from calls.models import CallSession
from tenancy.roles import Role
from tests.audit.conftest import ended_call
from tests.conftest import TenantWorld


def hold_url(call: CallSession) -> str:
    return reverse("dashboard:call_hold", args=[call.public_id])


def page_of(world: TenantWorld, role: str, call: CallSession) -> str:
    response = world.client_for(role).get(reverse("dashboard:call_detail", args=[call.public_id]))
    assert response.status_code == 200
    return html.unescape(response.content.decode())


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_owners_and_admins_set_and_lift_a_hold_with_who_and_when(
    tenant_a: TenantWorld, role: str
) -> None:
    call = ended_call(tenant_a.tenant)
    client = tenant_a.client_for(role)
    member = tenant_a.members[role].user

    response = client.post(hold_url(call), {"hold": "on"})

    assert response.status_code == 302
    call.refresh_from_db()
    assert call.legal_hold
    assert call.legal_hold_by == member.email
    assert call.legal_hold_at is not None
    text = page_of(tenant_a, role, call)
    assert "Under legal hold" in text
    assert f"Set by {member.email}" in text
    assert "Lift legal hold" in text

    client.post(hold_url(call), {"hold": "off"})

    call.refresh_from_db()
    assert not call.legal_hold
    assert "Last hold lifted by" in page_of(tenant_a, role, call)
    logs = list(
        AccessLog.objects.order_by("created_at", "pk").values_list("action", "call", "user")
    )
    assert logs == [
        (AccessAction.HOLD_SET, call.pk, member.pk),
        (AccessAction.HOLD_LIFTED, call.pk, member.pk),
    ]


def test_setting_a_hold_twice_records_one_change(tenant_a: TenantWorld) -> None:
    call = ended_call(tenant_a.tenant)
    client = tenant_a.client_for(Role.OWNER)

    client.post(hold_url(call), {"hold": "on"})
    first = CallSession.objects.get(pk=call.pk).legal_hold_at
    response = client.post(hold_url(call), {"hold": "on"}, follow=True)

    assert "already under legal hold" in response.content.decode()
    assert CallSession.objects.get(pk=call.pk).legal_hold_at == first
    assert AccessLog.objects.filter(action=AccessAction.HOLD_SET).count() == 1


@pytest.mark.parametrize("role", [Role.EDITOR, Role.AUDITOR])
def test_editors_and_auditors_cannot_hold_by_default(tenant_a: TenantWorld, role: str) -> None:
    call = ended_call(tenant_a.tenant)

    response = tenant_a.client_for(role).post(hold_url(call), {"hold": "on"})

    assert response.status_code == 403
    assert not CallSession.objects.get(pk=call.pk).legal_hold
    assert not AccessLog.objects.filter(action=AccessAction.HOLD_SET).exists()
    assert "Set legal hold" not in page_of(tenant_a, role, call)


def test_owner_lets_auditors_hold_in_the_tenant_settings(tenant_a: TenantWorld) -> None:
    call = ended_call(tenant_a.tenant)
    settings_url = reverse("dashboard:tenant_settings")
    owner = tenant_a.client_for(Role.OWNER)
    assert "Auditors may set legal hold" in owner.get(settings_url).content.decode()

    response = owner.post(
        settings_url,
        {
            "name": tenant_a.tenant.name,
            "time_zone": "UTC",
            "max_concurrent_calls": tenant_a.tenant.max_concurrent_calls,
            "auditors_may_hold": "on",
        },
    )

    assert response.status_code == 302
    tenant_a.tenant.refresh_from_db()
    assert tenant_a.tenant.auditors_may_hold
    auditor = tenant_a.client_for(Role.AUDITOR)
    assert "Set legal hold" in page_of(tenant_a, Role.AUDITOR, call)
    assert auditor.post(hold_url(call), {"hold": "on"}).status_code == 302
    log = AccessLog.objects.get(action=AccessAction.HOLD_SET)
    assert (log.role, log.call_id) == (Role.AUDITOR, call.pk)
    # The editor still may not: the toggle is about auditors.
    assert tenant_a.client_for(Role.EDITOR).post(hold_url(call), {"hold": "off"}).status_code == 403


def test_a_hold_request_without_a_clear_answer_changes_nothing(tenant_a: TenantWorld) -> None:
    call = ended_call(tenant_a.tenant)

    response = tenant_a.client_for(Role.OWNER).post(hold_url(call), {"hold": "maybe"}, follow=True)

    assert response.status_code == 200
    assert "Say whether to set or lift the legal hold." in response.content.decode()
    assert not CallSession.objects.get(pk=call.pk).legal_hold
    assert not AccessLog.objects.exists()


def test_hold_is_post_only_and_another_tenants_call_is_not_found(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    own, foreign = ended_call(tenant_a.tenant), ended_call(tenant_b.tenant)
    owner = tenant_a.client_for(Role.OWNER)

    assert owner.get(hold_url(own)).status_code == 405
    assert owner.post(hold_url(foreign), {"hold": "on"}).status_code == 404
    assert not CallSession.objects.get(pk=foreign.pk).legal_hold
