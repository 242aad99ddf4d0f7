"""Saving agents: every change of configuration becomes a new, immutable version."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Max

from agents.models import Agent, AgentVersion
from tools.models import ToolDefinition


def record_version(agent: Agent, user: Any = None) -> AgentVersion:
    """Snapshot the agent's configuration as a new version, unless it is unchanged."""
    with transaction.atomic():
        # Lock the agent row so two concurrent saves cannot take the same number.
        Agent.objects.select_for_update().filter(pk=agent.pk).first()
        config = agent.configuration()
        latest = agent.versions.order_by("-number").first()
        if latest is not None and latest.config == _as_json(config):
            if agent.current_version_id != latest.pk:
                Agent.objects.filter(pk=agent.pk).update(current_version=latest)
                agent.current_version = latest
            return latest
        number = (agent.versions.aggregate(top=Max("number"))["top"] or 0) + 1
        version = AgentVersion.objects.create(
            agent=agent, number=number, config=config, created_by=_user_or_none(user)
        )
        Agent.objects.filter(pk=agent.pk).update(current_version=version)
        agent.current_version = version
        return version


def save_agent(
    agent: Agent, tools: Iterable[ToolDefinition] | None = None, user: Any = None
) -> AgentVersion:
    """Save an agent (already validated) with its tools and record its new version."""
    tools = None if tools is None else list(tools)
    if tools and any(tool.tenant_id != agent.tenant_id for tool in tools):
        raise ValueError("An agent can only use its own tenant's tools.")
    with transaction.atomic():
        agent.save()
        if tools is not None:
            agent.tools.set(tools)
        return record_version(agent, user)


def duplicate_agent(agent: Agent, user: Any = None) -> Agent:
    tools = list(agent.tools.all())
    copy = Agent.objects.get(pk=agent.pk)
    copy.pk = None
    copy.id = None
    copy.public_id = Agent._meta.get_field("public_id").get_default()
    copy.current_version = None
    copy.name = _copy_name(agent)
    save_agent(copy, tools, user)
    return copy


def reversion_agents_using(tool: ToolDefinition, user: Any = None) -> None:
    """A tool's definition is part of each agent's configuration: re-version them."""
    for agent in tool.agents.all():
        record_version(agent, user)


def on_tool_changed(sender: Any, agent_ids: list[int], user: Any = None, **kwargs: Any) -> None:
    """Receiver of tools.actions.tool_changed (connected in AgentsConfig.ready)."""
    for agent in Agent.objects.filter(pk__in=agent_ids):
        record_version(agent, user)


def version_diff(older: AgentVersion | None, newer: AgentVersion) -> list[str]:
    def lines(version: AgentVersion | None) -> list[str]:
        if version is None:
            return []
        return json.dumps(version.config, indent=2, sort_keys=True).splitlines()

    return list(
        difflib.unified_diff(
            lines(older),
            lines(newer),
            fromfile=f"v{older.number}" if older else "(nothing)",
            tofile=f"v{newer.number}",
            lineterm="",
        )
    )


def _copy_name(agent: Agent) -> str:
    base = f"{agent.name} (copy)"
    name, counter = base, 2
    while Agent.objects.filter(tenant=agent.tenant_id, name=name).exists():
        name = f"{base} {counter}"
        counter += 1
    return name[:120]


def _as_json(config: dict[str, Any]) -> Any:
    return json.loads(json.dumps(config))


def _user_or_none(user: Any) -> Any:
    return user if user is not None and getattr(user, "is_authenticated", False) else None
