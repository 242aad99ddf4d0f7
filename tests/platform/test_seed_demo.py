"""seed_demo: idempotent, prints working credentials, --json for scripts."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from agents.models import Agent, WidgetKey
from tenancy.models import ApiKey, Membership, Tenant
from tools.models import ToolDefinition


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
    assert agent.tools.count() == 2
    assert ToolDefinition.objects.filter(tenant=tenant).count() == 2
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
