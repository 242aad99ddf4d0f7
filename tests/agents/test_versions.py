"""Agent versioning: every change is a new immutable version; history never changes."""

from __future__ import annotations

import pytest

from agents.models import AgentVersion, ImmutableVersionError
from agents.versions import (
    duplicate_agent,
    record_version,
    reversion_agents_using,
    save_agent,
    version_diff,
)
from tenancy.roles import Role
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, ToolFactory


def test_a_saved_version_cannot_be_changed(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, instructions="Be brief.")
    version = agent.versions.get()

    version.config = {**version.config, "instructions": "Be rude."}
    with pytest.raises(ImmutableVersionError):
        version.save()

    assert AgentVersion.objects.get(pk=version.pk).config["instructions"] == "Be brief."


def test_saving_a_change_records_the_next_version(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, instructions="Be brief.")
    user = tenant_a.members[Role.EDITOR].user

    agent.instructions = "Be warm."
    version = save_agent(agent, user=user)

    assert version.number == 2
    assert version.created_by == user
    assert version.config["instructions"] == "Be warm."
    assert agent.versions.get(number=1).config["instructions"] == "Be brief."
    agent.refresh_from_db()
    assert agent.current_version == version


def test_saving_without_a_change_records_nothing(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)

    version = save_agent(agent)

    assert version.number == 1
    assert agent.versions.count() == 1


def test_an_agent_cannot_use_another_tenants_tool(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    foreign_tool = ToolFactory(tenant=tenant_b.tenant)

    with pytest.raises(ValueError, match="own tenant's tools"):
        save_agent(agent, [foreign_tool])

    assert not agent.tools.exists()
    assert agent.versions.count() == 1


def test_a_tool_change_re_versions_only_the_agents_using_it(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant, description="Old.")
    user_of_tool = AgentFactory(tenant=tenant_a.tenant, tools=[tool])
    bystander = AgentFactory(tenant=tenant_a.tenant)

    tool.description = "New."
    tool.save()
    reversion_agents_using(tool)

    assert user_of_tool.versions.count() == 2
    assert user_of_tool.versions.get(number=2).config["tools"][0]["description"] == "New."
    assert bystander.versions.count() == 1


def test_duplicate_gets_a_new_name_id_and_its_own_history(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant)
    agent = AgentFactory(tenant=tenant_a.tenant, name="Reception", tools=[tool])
    agent.instructions = "Changed."
    save_agent(agent)

    first = duplicate_agent(agent)
    second = duplicate_agent(agent)

    assert (first.name, second.name) == ("Reception (copy)", "Reception (copy) 2")
    assert first.public_id != agent.public_id
    assert list(first.tools.all()) == [tool]
    assert list(first.versions.values_list("number", flat=True)) == [1]
    assert first.versions.get().config["instructions"] == "Changed."


def test_the_diff_shows_removed_and_added_lines(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, instructions="Be brief.")
    agent.instructions = "Be warm."
    save_agent(agent)
    older, newer = agent.versions.get(number=1), agent.versions.get(number=2)

    diff = version_diff(older, newer)

    assert diff[:2] == ["--- v1", "+++ v2"]
    assert '-  "instructions": "Be brief.",' in diff
    assert '+  "instructions": "Be warm.",' in diff
    assert any(line.startswith("@@") for line in diff)
    assert version_diff(newer, newer) == []


def test_record_version_is_idempotent(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)

    assert record_version(agent) == record_version(agent) == agent.versions.get()
