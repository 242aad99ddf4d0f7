"""The retention settings page: the tenant's policy, agents' overrides, recent purges."""

from __future__ import annotations

import pytest
from django.urls import reverse

from retention.models import PurgeLog, RetentionPolicy
from tests.conftest import TenantWorld
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

PAGE = reverse("dashboard:retention_settings")


def agent_page(agent_id: str) -> str:
    return reverse("dashboard:retention_agent", kwargs={"agent_id": agent_id})


def tenant_policy(world: TenantWorld) -> RetentionPolicy | None:
    return RetentionPolicy.objects.filter(tenant=world.tenant, agent__isnull=True).first()


def test_the_settings_page_links_to_retention(tenant_a: TenantWorld) -> None:
    response = tenant_a.client_for("owner").get(reverse("dashboard:tenant_settings"))
    assert PAGE in response.content.decode()


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owners_and_admins_set_the_tenant_policy(tenant_a: TenantWorld, role: str) -> None:
    client = tenant_a.client_for(role)
    response = client.post(
        PAGE, {"recording_days": "30", "transcript_days": "0", "event_log_days": ""}
    )

    assert response.status_code == 302
    policy = tenant_policy(tenant_a)
    assert policy is not None
    assert (policy.recording_days, policy.transcript_days, policy.event_log_days) == (30, 0, None)
    page = client.get(PAGE).content.decode()
    assert 'value="30"' in page

    # Saving again changes the one policy; emptying a field means forever.
    client.post(PAGE, {"recording_days": "", "transcript_days": "90", "event_log_days": "14"})
    policy = tenant_policy(tenant_a)
    assert policy is not None
    assert (policy.recording_days, policy.transcript_days, policy.event_log_days) == (None, 90, 14)
    assert RetentionPolicy.objects.filter(tenant=tenant_a.tenant).count() == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "greater than or equal to 0"),
        ("abc", "Enter a whole number"),
        ("2.5", "Enter a whole number"),
        ("36501", "less than or equal to 36500"),
    ],
)
def test_bad_days_are_field_errors(tenant_a: TenantWorld, value: str, message: str) -> None:
    response = tenant_a.client_for("owner").post(
        PAGE, {"recording_days": value, "transcript_days": "", "event_log_days": ""}
    )

    assert response.status_code == 200
    assert message in response.context["form"].errors["recording_days"][0]
    assert 'aria-invalid="true"' in response.content.decode()
    assert tenant_policy(tenant_a) is None


@pytest.mark.parametrize("role", ["editor", "auditor"])
def test_editors_and_auditors_get_403(tenant_a: TenantWorld, role: str) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    client = tenant_a.client_for(role)

    assert client.get(PAGE).status_code == 403
    assert client.post(PAGE, {"recording_days": "1"}).status_code == 403
    assert client.get(agent_page(agent.public_id)).status_code == 403
    assert client.post(agent_page(agent.public_id), {"recording_days": "1"}).status_code == 403
    assert not RetentionPolicy.objects.exists()


def test_an_agent_override_is_set_shown_and_cleared(tenant_a: TenantWorld) -> None:
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, recording_days=30, transcript_days=60)
    agent = AgentFactory(tenant=tenant_a.tenant, name="Night line")
    client = tenant_a.client_for("owner")

    response = client.post(
        agent_page(agent.public_id), {"recording_days": "0", "transcript_days": ""}
    )

    assert response.status_code == 302
    override = RetentionPolicy.objects.get(agent=agent)
    assert (override.tenant_id, override.recording_days, override.transcript_days) == (
        tenant_a.tenant.pk,
        0,
        None,
    )
    page = client.get(PAGE)
    [row] = page.context["agents"]
    # The days in force: its own for recordings, the tenant's for transcripts.
    assert (row.recording_days, row.transcript_days) == (0, 60)
    assert "override" in page.content.decode()

    client.post(agent_page(agent.public_id), {"recording_days": "", "transcript_days": ""})
    assert not RetentionPolicy.objects.filter(agent=agent).exists()
    assert tenant_policy(tenant_a) is not None


def test_an_agent_override_with_bad_input_shows_field_errors(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    response = tenant_a.client_for("admin").post(
        agent_page(agent.public_id), {"recording_days": "-5", "transcript_days": "x"}
    )

    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"recording_days", "transcript_days"}
    assert not RetentionPolicy.objects.exists()


def test_another_tenants_agent_is_404(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    foreign = AgentFactory(tenant=tenant_b.tenant)
    client = tenant_a.client_for("owner")

    assert client.get(agent_page(foreign.public_id)).status_code == 404
    assert client.post(agent_page(foreign.public_id), {"recording_days": "1"}).status_code == 404
    assert client.get(agent_page("agt_doesnotexist")).status_code == 404
    assert not RetentionPolicy.objects.exists()


def test_recent_purges_of_this_tenant_only_are_listed(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    PurgeLog.objects.create(tenant=tenant_a.tenant, trigger="beat", recordings=7, held_calls=2)
    PurgeLog.objects.create(tenant=tenant_a.tenant, trigger="erasure", transcripts=3)
    PurgeLog.objects.create(tenant=tenant_b.tenant, trigger="command", recordings=98765)

    response = tenant_a.client_for("owner").get(PAGE)

    purges = list(response.context["purges"])
    assert {purge.tenant_id for purge in purges} == {tenant_a.tenant.pk}
    assert len(purges) == 2
    page = response.content.decode()
    assert "Erasure request" in page and "Scheduled (beat)" in page
    assert "98765" not in page
