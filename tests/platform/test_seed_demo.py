"""seed_demo: a demo restaurant, idempotent, prints working credentials, --json for scripts."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from agents.models import Agent, WidgetKey
from tenancy.models import ApiKey, Membership, Tenant
from tools.execution import ToolSecrets, execute
from tools.models import ToolDefinition
from tools.outcomes import ToolRequest
from tools.spec import ToolSpec


def _seed() -> dict[str, str]:
    out = io.StringIO()
    call_command("seed_demo", "--json", stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_its_credentials_work() -> None:
    first = _seed()
    second = _seed()

    assert Tenant.objects.count() == 1
    tenant = Tenant.objects.get()
    assert tenant.public_id == first["tenant_id"] == second["tenant_id"]
    assert Membership.objects.get(tenant=tenant).role == "owner"
    agent = Agent.objects.get(tenant=tenant)
    assert agent.public_id == first["agent_id"] == second["agent_id"]
    assert agent.provider == "local"
    assert agent.tools.count() == 3
    # the three the agent uses, and the end_call built-in every tenant has in its picker
    assert ToolDefinition.objects.filter(tenant=tenant).count() == 4
    assert agent.versions.count() == 1
    assert WidgetKey.objects.get(agent=agent).key == first["publishable_key"]

    # Each run prints a working login and secret key; the previous secret is revoked.
    assert authenticate(username=second["owner_email"], password=second["owner_password"])
    assert authenticate(username=first["owner_email"], password=first["owner_password"]) is None
    assert ApiKey.authenticate(second["secret_key"]).tenant == tenant
    assert ApiKey.authenticate(first["secret_key"]) is None


@pytest.mark.django_db
def test_seed_demo_prints_the_dashboard_login() -> None:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    text = out.getvalue()
    assert "/login/" in text
    assert "owner@demo.koe.local" in text
    assert "Password:" in text


@pytest.mark.django_db
def test_seed_demo_is_a_restaurant_whose_host_books_tables() -> None:
    result = _seed()

    tenant = Tenant.objects.get(public_id=result["tenant_id"])
    agent = Agent.objects.get(public_id=result["agent_id"])
    assert tenant.name == "Koe Demo Bistro"
    assert result["owner_email"] == "owner@demo.koe.local"
    assert (agent.name, agent.provider, agent.response_engine) == ("Host", "local", "scripted")
    assert agent.voice == "joe"
    assert agent.greeting == "Hello, you've reached Koe Bistro. How can I help you today?"
    questions = " ".join(entry["question"] for entry in agent.faq).lower()
    for topic in ("open", "address", "parking", "vegetarian"):
        assert topic in questions
    agent.full_clean()

    config = agent.versions.get().config
    tools = {tool["name"]: tool for tool in config["tools"]}
    assert set(tools) == {"book_table", "current_time", "transfer_to_human"}
    booking = tools["book_table"]
    assert (booking["kind"], booking["execution"]) == ("mock", "inline")
    assert "I'd like a table for two at seven" in booking["example_phrases"]
    assert booking["parameters"]["required"] == ["party_size", "time"]
    assert booking["parameters"]["properties"]["time"]["pattern"] == r"^([01]\d|2[0-3]):[0-5]\d$"
    for tool in ToolDefinition.objects.filter(tenant=tenant):
        tool.full_clean()

    request = ToolRequest(
        ToolSpec.from_snapshot(booking),
        {"party_size": 2, "time": "19:00"},
        "ten",
        "agt",
        "",
        "fc_1",
    )
    reply = json.loads(asyncio.run(execute(request, ToolSecrets())).output)
    assert reply == {"ok": True, "message": "Your table for 2 at 19:00 is booked. See you then!"}
