"""Create (or refresh) the demo tenant so a newcomer can log in and try Koe at once.

Idempotent: objects are created once and found again on later runs. Secrets are stored
only hashed, so each run gives the demo owner a fresh password and issues a fresh demo
secret key (revoking the previous one) in order to print working credentials.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from agents.models import Agent, WidgetKey
from agents.versions import save_agent
from tenancy.models import ApiKey, Membership, Tenant
from tenancy.roles import Role
from tools.models import BuiltinTool, ToolDefinition, ToolKind

DEMO_TENANT = "Koe Demo Dental"
DEMO_EMAIL = "owner@demo.koe.local"
DEMO_AGENT = "Reception"
DEMO_KEY_NAME = "Demo backend (seed_demo)"

DEMO_TOOLS: list[dict[str, Any]] = [
    {
        "name": "current_time",
        "builtin_name": BuiltinTool.CURRENT_TIME,
        "description": "Tells the current date and time at the clinic.",
    },
    {
        "name": "transfer_to_human",
        "builtin_name": BuiltinTool.TRANSFER_TO_HUMAN,
        "description": "Hands the caller over to the front desk when they ask for a person.",
        "parameters": {
            "type": "object",
            "properties": {"reason": {"type": "string", "description": "Why to transfer."}},
            "required": ["reason"],
        },
    },
]


class Command(BaseCommand):
    help = "Create or refresh the demo tenant, its owner, an agent with two tools and keys."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        result = seed_demo()
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        self.stdout.write(
            self.style.SUCCESS("Demo tenant ready.")
            + f"\n  Dashboard:       {result['dashboard_url']}"
            + f"\n  Log in as:       {result['owner_email']}"
            + f"\n  Password:        {result['owner_password']}"
            + f"\n  Agent id:        {result['agent_id']}"
            + f"\n  Secret API key:  {result['secret_key']}"
            + f"\n  Publishable key: {result['publishable_key']}"
        )


@transaction.atomic
def seed_demo() -> dict[str, str]:
    tenant, _ = Tenant.objects.get_or_create(
        name=DEMO_TENANT, defaults={"time_zone": "Europe/London"}
    )
    password = secrets.token_urlsafe(12)
    user_model = get_user_model()
    owner, _ = user_model.objects.get_or_create(username=DEMO_EMAIL, defaults={"email": DEMO_EMAIL})
    owner.set_password(password)
    owner.save()
    Membership.objects.get_or_create(user=owner, tenant=tenant, defaults={"role": Role.OWNER})

    tools = []
    for spec in DEMO_TOOLS:
        tool, _ = ToolDefinition.objects.get_or_create(
            tenant=tenant,
            name=spec["name"],
            defaults={
                "kind": ToolKind.BUILTIN,
                "builtin_name": spec["builtin_name"],
                "description": spec["description"],
                "parameters": spec.get(
                    "parameters", {"type": "object", "properties": {}, "required": []}
                ),
            },
        )
        tools.append(tool)

    agent = Agent.objects.filter(tenant=tenant, name=DEMO_AGENT).first()
    if agent is None:
        agent = Agent(
            tenant=tenant,
            name=DEMO_AGENT,
            instructions=(
                "You are the friendly receptionist of a small dental clinic. Answer briefly, "
                "offer to transfer callers to the front desk for bookings."
            ),
            greeting="Hello, you're through to Koe Demo Dental. How can I help you today?",
            recording_offered=True,
        )
        save_agent(agent, tools)

    origins = sorted({settings.KOE_SITE_URL, "http://127.0.0.1:8000", "http://localhost:8000"})
    widget_key = WidgetKey.objects.filter(agent=agent, revoked_at__isnull=True).first()
    if widget_key is None:
        widget_key = WidgetKey.objects.create(agent=agent, allowed_origins=origins)

    ApiKey.objects.filter(tenant=tenant, name=DEMO_KEY_NAME, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    _, secret = ApiKey.issue(tenant, DEMO_KEY_NAME, created_by=owner)

    return {
        "dashboard_url": settings.KOE_SITE_URL + reverse("dashboard:login"),
        "tenant_id": tenant.public_id,
        "owner_email": DEMO_EMAIL,
        "owner_password": password,
        "agent_id": agent.public_id,
        "secret_key": secret,
        "publishable_key": widget_key.key,
    }
