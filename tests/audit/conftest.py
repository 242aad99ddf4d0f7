"""Helpers of the audit tests: calls with a consented transcript and tool calls."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from calls.models import (
    CallSession,
    CallStatus,
    ConsentMethod,
    ConsentScope,
    EndReason,
    TranscriptItem,
)
from tenancy.models import Tenant
from tests.factories import AgentFactory
from tools.invocations import ToolInvocation

HOSTILE = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    "\"'><svg onload=alert(3)>",
]


def visible_text(response: Any) -> str:
    """The page as a person reads it: tags removed, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", response.content.decode()))


def ended_call(tenant: Tenant, **fields: Any) -> CallSession:
    """An ended call with transcript consent unless told otherwise."""
    agent = fields.pop("agent", None) or AgentFactory(tenant=tenant)
    started = fields.pop("started_at", None) or timezone.now() - timedelta(minutes=10)
    values: dict[str, Any] = {
        "tenant": tenant,
        "agent": agent,
        "agent_version": agent.current_version,
        "agent_name": agent.name,
        "version_number": agent.current_version.number,
        "channel": "widget",
        "provider": "local",
        "model": "koe-local",
        "status": CallStatus.ENDED,
        "started_at": started,
        "ended_at": started + timedelta(seconds=90),
        "duration_ms": 90_000,
        "end_reason": EndReason.CLIENT_CLOSED,
        "consent_scope": ConsentScope.TRANSCRIPT,
        "consent_method": ConsentMethod.WIDGET,
        "consent_at": started,
        "consent_version": 3,
        "consent_text": "May we keep a transcript of this call?",
    }
    values.update(fields)
    return CallSession.objects.create(**values)


def add_conversation(call: CallSession, *, say: str = "Is Dr Mori in today?") -> None:
    """Caller, tool call, tool result, agent (interrupted), at known offsets from the start."""

    def at(seconds: float) -> Any:
        return call.started_at + timedelta(seconds=seconds)

    TranscriptItem.objects.create(
        call=call, sequence=1, role="user", text=say, created_at=at(1.5), item_id="item_u1"
    )
    TranscriptItem.objects.create(
        call=call,
        sequence=2,
        role="tool",
        tool_name="check_schedule",
        tool_arguments='{"doctor": "Mori"}',
        item_id="item_f1",
        created_at=at(2.25),
    )
    TranscriptItem.objects.create(
        call=call,
        sequence=3,
        role="tool",
        tool_name="check_schedule",
        text='{"open": true}',
        item_id="item_f1",
        created_at=at(2.75),
    )
    TranscriptItem.objects.create(
        call=call,
        sequence=4,
        role="assistant",
        text="Yes, until five. Shall I book",
        latency_ms=612,
        interrupted=True,
        item_id="item_a1",
        created_at=at(3.0),
    )
    ToolInvocation.objects.create(
        tenant=call.tenant,
        call=call,
        tool_name="check_schedule",
        function_call_id="fc_1",
        idempotency_key=f"{call.public_id}:fc_1",
        source="call",
        execution="inline",
        status="succeeded",
        stores_content=call.stores_transcript,
        arguments={"doctor": "Mori"} if call.stores_transcript else None,
        result='{"open": true}' if call.stores_transcript else "",
        attempts=1,
        duration_ms=48,
        delivery="inline",
        created_at=at(2.3),
    )


@pytest.fixture(autouse=True)
def _media_in_a_temporary_folder(settings: Any, tmp_path: Path) -> None:
    """Exports are written through default storage: keep them out of the real media folder."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _tasks_run_in_process(settings: Any) -> None:
    """Export tasks run in the test's process (also where REDIS_URL is set); the worker
    tests in test_exports_worker.py switch this off and use a real worker."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
