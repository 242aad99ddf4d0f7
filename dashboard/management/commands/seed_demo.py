"""Create (or refresh) the demo tenant so a newcomer can log in and try Koe at once.

Idempotent: objects are created once and found again on later runs. Secrets are stored
only hashed, so each run gives the demo owner a fresh password and issues a fresh demo
secret key (revoking the previous one) in order to print working credentials. The demo
agent's publishable widget key allows KOE_SITE_URL's origin, so /demo/ works at once.
"""

from __future__ import annotations

import copy
import json
import secrets
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from agents.models import Agent, ResponseEngineKind, WidgetKey, normalize_origin
from agents.versions import save_agent
from tenancy.models import ApiKey, Membership, Provider, Tenant
from tenancy.roles import Role
from tools.actions import ensure_builtin_tools
from tools.models import BuiltinTool, Execution, ToolDefinition, ToolKind

DEMO_TENANT = "Koe Demo Bistro"
DEMO_EMAIL = "owner@demo.koe.local"
DEMO_AGENT = "Host"
DEMO_KEY_NAME = "Demo backend (seed_demo)"
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost"})

DEMO_INSTRUCTIONS = (
    "You are the host of Koe Bistro, a small neighbourhood restaurant. Answer briefly and "
    "warmly. Book tables with book_table: ask for the number of guests and the time if the "
    "caller has not said them, and read the booking back. Offer to transfer callers to a "
    "member of staff for anything you cannot help with."
)
DEMO_GREETING = "Hello, you've reached Koe Bistro. How can I help you today?"
DEMO_FAQ: list[dict[str, str]] = [
    {
        "question": "When are you open?",
        "answer": "We're open every day from noon to eleven in the evening; "
        "the kitchen takes last orders at ten.",
    },
    {
        "question": "What is your address?",
        "answer": "We're at 12 Harbour Street, next to the old fish market.",
    },
    {
        "question": "Is there parking nearby?",
        "answer": "There's a public car park on Quay Road, two minutes' walk away; "
        "it's free after six.",
    },
    {
        "question": "Do you have vegetarian options?",
        "answer": "Yes: about half of our menu is vegetarian, and there's always a vegan "
        "main course.",
    },
]

BOOKING_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "party_size": {
            "type": "integer",
            "minimum": 1,
            "maximum": 12,
            "description": "Number of guests",
        },
        "time": {
            "type": "string",
            "pattern": r"^([01]\d|2[0-3]):[0-5]\d$",
            "description": "Time of the booking, 24-hour HH:MM",
        },
        "name": {"type": "string", "description": "Name for the booking"},
    },
    "required": ["party_size", "time"],
}

DEMO_TOOLS: list[dict[str, Any]] = [
    {
        "name": "book_table",
        "kind": ToolKind.MOCK,
        "description": "Books a table for the caller: the number of guests, the time "
        "(24-hour HH:MM) and, if given, a name for the booking.",
        "parameters": BOOKING_PARAMETERS,
        "example_phrases": [
            "I'd like a table for two at seven",
            "book a table",
            "can I make a reservation",
            "a table for four tonight",
        ],
        "mock_response": "Your table for {party_size} at {time} is booked. See you then!",
        "execution": Execution.INLINE,
    },
    {
        "name": "current_time",
        "kind": ToolKind.BUILTIN,
        "builtin_name": BuiltinTool.CURRENT_TIME,
        "description": "Tells the current date and time at the restaurant.",
    },
    {
        "name": "transfer_to_human",
        "kind": ToolKind.BUILTIN,
        "builtin_name": BuiltinTool.TRANSFER_TO_HUMAN,
        "description": "Hands the caller over to a member of staff when they ask for a person.",
        "parameters": {
            "type": "object",
            "properties": {"reason": {"type": "string", "description": "Why to transfer."}},
            "required": ["reason"],
        },
    },
]


class Command(BaseCommand):
    help = "Create or refresh the demo restaurant: its owner, a host agent with tools, and keys."

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
            + f"\n  Demo page:       {result['demo_url']}  (the widget on the bistro's site)"
        )


@transaction.atomic
def seed_demo() -> dict[str, str]:
    """Create or refresh the demo tenant; returns the credentials and URLs to print."""
    tenant, _ = Tenant.objects.get_or_create(
        name=DEMO_TENANT, defaults={"time_zone": "Europe/London"}
    )
    password = secrets.token_urlsafe(12)
    user_model = get_user_model()
    owner, _ = user_model.objects.get_or_create(username=DEMO_EMAIL, defaults={"email": DEMO_EMAIL})
    owner.set_password(password)
    owner.save()
    Membership.objects.get_or_create(user=owner, tenant=tenant, defaults={"role": Role.OWNER})

    tools = [_demo_tool(tenant, spec) for spec in DEMO_TOOLS]
    # The demo's two built-ins are worded for the restaurant; end_call comes as every
    # tenant's does (the host does not use it).
    ensure_builtin_tools(tenant)

    agent = Agent.objects.filter(tenant=tenant, name=DEMO_AGENT).first()
    if agent is None:
        agent = Agent(
            tenant=tenant,
            name=DEMO_AGENT,
            provider=Provider.LOCAL,
            response_engine=ResponseEngineKind.SCRIPTED,
            instructions=DEMO_INSTRUCTIONS,
            greeting=DEMO_GREETING,
            # The demo greets whoever calls, an SDK script too: a client's first
            # response.create waits for the greeting to finish.
            greet_api_callers=True,
            faq=DEMO_FAQ,
            recording_offered=True,
        )
        agent.full_clean()
        save_agent(agent, tools)

    widget_key = _demo_widget_key(agent)

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
        "demo_url": settings.KOE_SITE_URL + reverse("dashboard:demo"),
    }


def demo_origins(site_url: str) -> list[str]:
    """Where the demo page is served: the site's origin, and on a loopback address both
    names of it (a browser sends whichever the visitor typed as the Origin)."""
    site = urlsplit(site_url)
    origin = normalize_origin(f"{site.scheme}://{site.netloc}")
    origins = {origin}
    if site.hostname in LOOPBACK_NAMES:
        port = f":{site.port}" if site.port else ""
        origins |= {f"{site.scheme}://{name}{port}" for name in ("127.0.0.1", "localhost")}
    return sorted(origins)


def _demo_widget_key(agent: Agent) -> WidgetKey:
    """The demo agent's publishable key, created once and widened to the current site.

    A later run under another KOE_SITE_URL (a new port, a public host name) adds that
    origin to the key rather than minting a second one, so the demo page keeps one key.
    """
    wanted = demo_origins(settings.KOE_SITE_URL)
    widget_key = (
        WidgetKey.objects.filter(agent=agent, revoked_at__isnull=True)
        .order_by("created_at")
        .first()
    )
    if widget_key is None:
        return WidgetKey.objects.create(agent=agent, allowed_origins=wanted)
    missing = [origin for origin in wanted if not widget_key.allows_origin(origin)]
    if missing:
        widget_key.allowed_origins = [*widget_key.allowed_origins, *missing]
        widget_key.full_clean()
        widget_key.save(update_fields=["allowed_origins"])
    return widget_key


def _demo_tool(tenant: Tenant, spec: dict[str, Any]) -> ToolDefinition:
    """The demo's tool of this spec, created once (a built-in is found by its builtin_name)."""
    tools = ToolDefinition.objects.filter(tenant=tenant)
    if spec["kind"] == ToolKind.BUILTIN:
        tools = tools.filter(kind=ToolKind.BUILTIN, builtin_name=spec["builtin_name"])
    else:
        tools = tools.filter(name=spec["name"])
    tool = tools.order_by("created_at", "pk").first()
    if tool is None:
        tool = ToolDefinition(tenant=tenant, **copy.deepcopy(spec))
        tool.full_clean()
        tool.save()
    return tool
