"""Making calls with the fields the list filters on, and reading which calls a page shows."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from agents.models import Agent
from calls.models import CallSession, CallStatus, ConsentScope, EndReason
from tenancy.models import Tenant

CALL_ID = re.compile(r"call_[A-Za-z0-9]+")


def make_call(
    tenant: Tenant,
    agent: Agent | None = None,
    *,
    started_at: datetime | None = None,
    duration_s: int = 60,
    **fields: Any,
) -> CallSession:
    """An ended call, a minute long, started an hour ago unless told otherwise."""
    started = started_at or timezone.now() - timedelta(hours=1)
    values: dict[str, Any] = {
        "tenant": tenant,
        "agent": agent,
        "agent_version": agent.current_version if agent else None,
        "agent_name": agent.name if agent else "Reception",
        "version_number": agent.current_version.number if agent else 1,
        "channel": "widget",
        "provider": "local",
        "model": "koe-local",
        "status": CallStatus.ENDED,
        "started_at": started,
        "ended_at": started + timedelta(seconds=duration_s),
        "duration_ms": duration_s * 1000,
        "end_reason": EndReason.CLIENT_CLOSED,
        "consent_scope": ConsentScope.NONE,
        "billed_amount": Decimal("0.10"),
        "cost": Decimal("0.08"),
    }
    values.update(fields)
    return CallSession.objects.create(**values)


def shown(client: Client, calls: dict[str, CallSession], **params: Any) -> set[str]:
    """Which of ``calls`` (by name) the list page shows for these query parameters."""
    response = client.get(reverse("dashboard:call_list"), params)
    assert response.status_code == 200
    on_page = set(CALL_ID.findall(response.content.decode()))
    return {name for name, call in calls.items() if call.public_id in on_page}


def page_text(client: Client, **params: Any) -> str:
    response = client.get(reverse("dashboard:call_list"), params)
    assert response.status_code == 200
    return html.unescape(response.content.decode())
