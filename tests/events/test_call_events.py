"""Events about calls: ``call.ended`` with the call's summary, ``call.transfer_requested``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from calls.ledger import end_call, store_progress
from calls.models import CallSession, TranscriptItem
from events import emit_transfer_requested
from events.models import EventEndpoint, OutboundEvent
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.fakes.http_receiver import HttpReceiver

pytestmark = pytest.mark.django_db

SAID = "my card number is 4242 4242 4242 4242"


def start_call(world: TenantWorld, consent_scope: str = "transcript") -> CallSession:
    agent = AgentFactory(tenant=world.tenant, name="Front desk")
    return CallSession.objects.create(
        tenant=world.tenant,
        agent=agent,
        agent_version=agent.current_version,
        agent_name=agent.name,
        version_number=agent.current_version.number,
        channel="widget",
        end_user_ref="customer-42",
        consent_scope=consent_scope,
        provider="local",
        model="koe-local",
    )


def talk(call: CallSession) -> None:
    store_progress(
        call.pk,
        transcript=[{"role": "user", "text": SAID}, {"role": "assistant", "text": "Thank you."}],
        usage=[
            {
                "response_id": "resp_1",
                "usage": {"input_tokens": 120, "output_tokens": 30, "total_tokens": 150},
            }
        ],
        interrupted_item_ids=[],
        turn_count=1,
        latencies_ms=[640],
    )


def test_ending_a_call_sends_call_ended_with_its_summary_and_no_words(
    tenant_a: TenantWorld,
    endpoint: EventEndpoint,
    receiver: HttpReceiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    call = start_call(tenant_a)
    talk(call)
    assert TranscriptItem.objects.filter(call=call, text=SAID).exists()

    with django_capture_on_commit_callbacks(execute=True):
        ended = end_call(call.pk, "client_closed")

    [request] = receiver.requests
    assert SAID not in request.body.decode()
    body = json.loads(request.body)
    assert body["type"] == "call.ended"
    assert body["data"] == {
        "call_id": call.public_id,
        "agent": {"id": call.agent.public_id, "name": "Front desk", "version": 1},
        "channel": "widget",
        "end_user_ref": "customer-42",
        "status": "ended",
        "started_at": ended.started_at.isoformat(),
        "ended_at": ended.ended_at.isoformat() if ended.ended_at else None,
        "duration_ms": ended.duration_ms,
        "end_reason": "client_closed",
        "provider_sessions": 1,
        "turn_count": 1,
        "tokens": {"input": 120, "output": 30, "total": 150},
        "consent_scope": "transcript",
        "needs_follow_up": False,
    }
    assert OutboundEvent.objects.get().status == "delivered"


def test_ending_a_call_twice_sends_one_event(
    tenant_a: TenantWorld, endpoint: EventEndpoint, django_capture_on_commit_callbacks: Any
) -> None:
    call = start_call(tenant_a)
    with django_capture_on_commit_callbacks(execute=True):
        end_call(call.pk, "client_closed")
        end_call(call.pk, "idle_timeout")
    assert list(OutboundEvent.objects.values_list("type", flat=True)) == ["call.ended"]
    call.refresh_from_db()
    assert call.end_reason == "client_closed"


def test_without_an_events_url_a_call_ends_as_before(
    tenant_a: TenantWorld, django_capture_on_commit_callbacks: Any
) -> None:
    call = start_call(tenant_a)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        ended = end_call(call.pk, "agent", "said goodbye")
    assert (ended.status, ended.end_reason, ended.end_detail) == ("ended", "agent", "said goodbye")
    assert len(callbacks) == 2  # settling its cost, and the call_ended signal; no delivery
    assert not OutboundEvent.objects.exists()


def test_a_transfer_request_marks_the_call_and_tells_the_tenant(
    tenant_a: TenantWorld,
    endpoint: EventEndpoint,
    receiver: HttpReceiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    call = start_call(tenant_a)

    with django_capture_on_commit_callbacks(execute=True):
        emit_transfer_requested(call, "  Wants to dispute\na charge. ")

    assert (call.needs_follow_up, call.follow_up_reason) == (True, "Wants to dispute a charge.")
    stored = CallSession.objects.get(pk=call.pk)
    assert (stored.needs_follow_up, stored.follow_up_reason) == (True, "Wants to dispute a charge.")
    assert CallSession.objects.filter(tenant=tenant_a.tenant, needs_follow_up=True).count() == 1
    [request] = receiver.requests
    body = json.loads(request.body)
    assert body["type"] == "call.transfer_requested"
    assert body["data"]["call_id"] == call.public_id
    assert body["data"]["status"] == "active"
    assert body["data"]["needs_follow_up"] is True
    assert body["data"]["reason"] == "Wants to dispute a charge."


def test_without_transcript_consent_the_reason_is_neither_kept_nor_sent(
    tenant_a: TenantWorld,
    endpoint: EventEndpoint,
    receiver: HttpReceiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    call = start_call(tenant_a, consent_scope="none")

    with django_capture_on_commit_callbacks(execute=True):
        emit_transfer_requested(call, "Wants to dispute a charge.")

    stored = CallSession.objects.get(pk=call.pk)
    assert (stored.needs_follow_up, stored.follow_up_reason) == (True, "")
    [request] = receiver.requests
    assert json.loads(request.body)["data"]["reason"] == ""
    assert "dispute" not in request.body.decode()


def test_a_transfer_request_without_an_events_url_still_marks_the_call(
    tenant_a: TenantWorld,
) -> None:
    call = start_call(tenant_a)
    emit_transfer_requested(call, "Asked for a manager.")
    assert CallSession.objects.get(pk=call.pk).needs_follow_up is True
    assert not OutboundEvent.objects.exists()
