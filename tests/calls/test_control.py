"""Ending a call from outside the process that holds it (calls.control)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from calls import control
from calls.control import EndOutcome, request_call_end
from calls.models import CallSession, ServerInstance
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, CallFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def call(tenant_a: TenantWorld) -> CallSession:
    return CallFactory(agent=AgentFactory(tenant=tenant_a.tenant))


def _listening(call: CallSession) -> str:
    """A channel in the call's group, as the live call's consumer is."""
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(call.group_name, channel)
    return str(channel)


def test_a_live_call_is_asked_to_end_and_records_its_own_end(call: CallSession) -> None:
    channel = _listening(call)
    assert request_call_end(call, "ops@example.com") == EndOutcome.SIGNALLED
    message = async_to_sync(get_channel_layer().receive)(channel)
    assert message == {
        "type": "call.end",
        "reason": "operator",
        "detail": "Ended from the dashboard by ops@example.com",
    }
    call.refresh_from_db()
    assert call.status == "active"  # the process holding it writes the end


def test_an_ended_call_is_left_as_it_is(call: CallSession) -> None:
    call.status = "ended"
    call.save(update_fields=["status"])
    assert request_call_end(call, "ops@example.com") == EndOutcome.ALREADY_ENDED


@pytest.mark.parametrize("why", ["too old", "its server is lost"])
def test_a_call_no_process_holds_is_ended_here(call: CallSession, why: str) -> None:
    if why == "too old":
        call.started_at = timezone.now() - timedelta(hours=2)
    else:
        ServerInstance.objects.create(
            name="dead~1", last_seen_at=timezone.now() - timedelta(minutes=5)
        )
        call.server_instance = "dead~1"
    call.save()
    assert control.is_stale(call)
    assert request_call_end(call, "ops@example.com") == EndOutcome.ENDED_STALE
    call.refresh_from_db()
    assert (call.status, call.end_reason) == ("ended", "operator")
    assert call.end_detail == "Ended from the dashboard by ops@example.com"


def test_when_the_channel_layer_refuses_a_live_call_is_reported_unreachable(
    call: CallSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(get_channel_layer(), "group_send", refused)
    assert request_call_end(call, "ops@example.com") == EndOutcome.UNREACHABLE
    call.refresh_from_db()
    assert call.status == "active"  # not ended behind a live call's back


def test_when_the_channel_layer_refuses_a_stale_call_is_still_ended(
    call: CallSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refused(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(get_channel_layer(), "group_send", refused)
    call.started_at = timezone.now() - timedelta(hours=2)
    call.save(update_fields=["started_at"])
    assert request_call_end(call, "ops@example.com") == EndOutcome.ENDED_STALE
    call.refresh_from_db()
    assert call.status == "ended"


def test_a_call_is_stale_only_while_active(call: CallSession) -> None:
    assert not control.is_stale(call)
    call.started_at = timezone.now() - timedelta(hours=2)
    assert control.is_stale(call)
    call.status = "ended"
    assert not control.is_stale(call)
