"""Delivering events: signed POSTs to the tenant's URL, retried on the receiver's failures."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from celery.exceptions import Retry
from django.conf import settings
from django.utils import timezone

from events import delivery, emit
from events.models import EventEndpoint, EventStatus, OutboundEvent
from events.tasks import deliver_event, longest_countdown, send_due_events
from foundation import signing
from tests.conftest import TenantWorld
from tests.fakes.http_receiver import HttpReceiver, Reply

pytestmark = pytest.mark.django_db


def new_event(tenant_a: TenantWorld, event_type: str = "ping") -> OutboundEvent:
    """An event recorded without delivering it (the test then runs the task itself)."""
    return OutboundEvent.objects.create(
        tenant=tenant_a.tenant, type=event_type, payload={"message": "hello"}
    )


def run(event: OutboundEvent) -> str:
    """One run of the task as a worker runs it; 'retry' when it asks to be retried."""
    try:
        return deliver_event(event.pk)
    except Retry:
        return "retry"


def test_an_emitted_event_is_delivered_signed_with_the_endpoints_secret(
    tenant_a: TenantWorld,
    endpoint: EventEndpoint,
    receiver: HttpReceiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        event = emit(tenant_a.tenant, "call.ended", {"call_id": "call_123", "turn_count": 3})
        assert event is not None
        assert not receiver.requests  # nothing leaves before the transaction commits

    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/koe/events")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["koe-event-id"] == event.public_id
    signing.verify(endpoint.signing_secret, request.headers["koe-signature"], request.body)
    body = json.loads(request.body)
    assert body == {
        "id": event.public_id,
        "type": "call.ended",
        "created": int(event.created_at.timestamp()),
        "data": {"call_id": "call_123", "turn_count": 3},
    }
    assert event.public_id.startswith("evt_")
    event.refresh_from_db()
    assert (event.status, event.attempts, event.last_status_code, event.last_error) == (
        EventStatus.DELIVERED,
        1,
        200,
        "",
    )
    assert event.delivered_at is not None


def test_another_secret_does_not_verify(
    tenant_a: TenantWorld, endpoint: EventEndpoint, receiver: HttpReceiver
) -> None:
    run(new_event(tenant_a))
    [request] = receiver.requests
    with pytest.raises(signing.SignatureError):
        signing.verify("whsec_other", request.headers["koe-signature"], request.body)


def test_without_an_active_endpoint_nothing_is_emitted(
    tenant_a: TenantWorld, tenant_b: TenantWorld, receiver: HttpReceiver
) -> None:
    EventEndpoint.objects.create(tenant=tenant_b.tenant, url="", is_active=False)
    assert emit(tenant_a.tenant, "ping", {}) is None
    assert emit(tenant_b.tenant, "ping", {}) is None
    assert not OutboundEvent.objects.exists()
    assert receiver.connections == 0


def test_server_errors_are_retried_with_backoff_and_the_same_event_id(
    tenant_a: TenantWorld, endpoint: EventEndpoint, receiver: HttpReceiver, retries: list[int]
) -> None:
    receiver.reply(Reply(status=500, body="database down"), Reply(status=503))
    event = new_event(tenant_a)

    assert run(event) == "retry"
    event.refresh_from_db()
    assert (event.status, event.attempts, event.last_status_code) == ("pending", 1, 500)
    assert event.last_error == "HTTP 500: database down"
    assert [run(event), run(event)] == ["retry", "delivered"]

    assert retries == [30, 90]
    assert len(receiver.requests) == 3
    assert {request.headers["koe-event-id"] for request in receiver.requests} == {event.public_id}
    assert len({request.body for request in receiver.requests}) == 1
    for request in receiver.requests:
        signing.verify(endpoint.signing_secret, request.headers["koe-signature"], request.body)
    event.refresh_from_db()
    assert (event.status, event.attempts, event.last_status_code, event.last_error) == (
        "delivered",
        3,
        200,
        "",
    )


@pytest.mark.parametrize("status", [408, 429, 502, 504])
def test_busy_or_broken_receivers_are_retried(
    status: int,
    tenant_a: TenantWorld,
    endpoint: EventEndpoint,
    receiver: HttpReceiver,
    retries: list[int],
) -> None:
    receiver.reply(Reply(status=status))
    event = new_event(tenant_a)
    assert [run(event), run(event)] == ["retry", "delivered"]


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
def test_client_errors_fail_without_retrying(
    status: int,
    tenant_a: TenantWorld,
    endpoint: EventEndpoint,
    receiver: HttpReceiver,
    retries: list[int],
) -> None:
    receiver.reply(Reply(status=status, body='{"error": "no such hook"}'))
    event = new_event(tenant_a)

    assert run(event) == "failed"

    assert retries == []
    assert len(receiver.requests) == 1
    event.refresh_from_db()
    assert (event.status, event.attempts, event.last_status_code) == ("failed", 1, status)
    assert event.last_error == f'HTTP {status}: {{"error": "no such hook"}}'


def test_a_private_address_is_blocked_without_connecting(
    tenant_a: TenantWorld,
    endpoint: EventEndpoint,
    receiver: HttpReceiver,
    retries: list[int],
    settings: Any,
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = []
    event = new_event(tenant_a)

    assert run(event) == "failed"

    assert receiver.connections == 0
    assert retries == []
    event.refresh_from_db()
    assert event.status == "failed"
    assert event.last_error == "Blocked: 127.0.0.1 is a loopback address."


def test_a_delivered_event_is_not_sent_again(
    tenant_a: TenantWorld, endpoint: EventEndpoint, receiver: HttpReceiver
) -> None:
    event = new_event(tenant_a)
    assert run(event) == "delivered"
    assert run(event) == "skipped"
    assert len(receiver.requests) == 1
    event.refresh_from_db()
    assert event.attempts == 1


def test_a_failed_event_is_not_sent_again(
    tenant_a: TenantWorld, endpoint: EventEndpoint, receiver: HttpReceiver
) -> None:
    receiver.reply(Reply(status=404))
    event = new_event(tenant_a)
    assert [run(event), run(event)] == ["failed", "skipped"]
    assert len(receiver.requests) == 1


def test_a_receiver_that_does_not_answer_in_time_is_retried(
    tenant_a: TenantWorld,
    endpoint: EventEndpoint,
    receiver: HttpReceiver,
    retries: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(delivery, "TIMEOUT_SECONDS", 0.3)
    receiver.reply(Reply(hold=True))
    event = new_event(tenant_a)

    assert run(event) == "retry"

    event.refresh_from_db()
    assert (event.status, event.attempts, event.last_status_code) == ("pending", 1, None)
    assert event.last_error == "No response within 0.3 s."


def test_an_unreachable_receiver_is_retried(
    tenant_a: TenantWorld, receiver: HttpReceiver, retries: list[int]
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    EventEndpoint.objects.create(tenant=tenant_a.tenant, url=f"http://127.0.0.1:{closed_port}/")
    event = new_event(tenant_a)

    assert run(event) == "retry"

    event.refresh_from_db()
    assert event.status == "pending"
    assert event.last_error.startswith("Could not reach the URL (ConnectError)")


def test_delivery_gives_up_after_eight_attempts(
    tenant_a: TenantWorld, endpoint: EventEndpoint, receiver: HttpReceiver, retries: list[int]
) -> None:
    receiver.default = Reply(status=500, body="")
    event = new_event(tenant_a)

    outcomes = [run(event) for _ in range(8)]

    # Retries the broker can hold are its own; further ones are scheduled on the event.
    assert outcomes == ["retry"] * 3 + ["scheduled"] * 4 + ["failed"]
    assert retries == [30, 90, 270]
    assert len(receiver.requests) == 8
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("failed", 8)
    assert event.last_error == "HTTP 500 (gave up after 8 attempt(s))"


def test_run_eagerly_a_failure_is_not_retried_at_once(
    tenant_a: TenantWorld,
    endpoint: EventEndpoint,
    receiver: HttpReceiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """Without a broker a retry would run immediately: one attempt, then failed, says why."""
    receiver.default = Reply(status=503, body="")
    with django_capture_on_commit_callbacks(execute=True):
        event = emit(tenant_a.tenant, "ping", {})
    assert event is not None

    assert len(receiver.requests) == 1
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("failed", 1)
    assert event.last_error == "HTTP 503 (not retried (no Celery worker) after 1 attempt(s))"


def test_a_redirect_is_not_followed(
    tenant_a: TenantWorld, endpoint: EventEndpoint, receiver: HttpReceiver, retries: list[int]
) -> None:
    receiver.reply(Reply(status=302, body="", headers={"Location": "/elsewhere"}))
    event = new_event(tenant_a)

    assert run(event) == "failed"

    assert [request.path for request in receiver.requests] == ["/koe/events"]
    event.refresh_from_db()
    assert event.last_status_code == 302
    assert "redirects to /elsewhere" in event.last_error


def test_an_event_pending_when_events_are_turned_off_fails(
    tenant_a: TenantWorld, endpoint: EventEndpoint, receiver: HttpReceiver
) -> None:
    event = new_event(tenant_a)
    EventEndpoint.objects.filter(pk=endpoint.pk).update(url="", is_active=False)

    assert run(event) == "failed"

    assert receiver.connections == 0
    event.refresh_from_db()
    assert event.status == "failed"
    assert "turned off" in event.last_error


def test_retry_delays_grow_and_none_is_left_to_the_broker_past_its_visibility_timeout() -> None:
    delays = [delivery.retry_delay(attempts) for attempts in range(1, 12)]
    assert delays == sorted(delays)
    assert delays[0] == 30
    assert max(delays) == 2 * 3600
    # Redis hands an unconfirmed message to a second worker after the visibility timeout:
    # a countdown longer than that would send the event twice.
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert 0 < longest_countdown() < timeout


def test_a_scheduled_retry_is_sent_once_when_due(
    tenant_a: TenantWorld, endpoint: EventEndpoint, receiver: HttpReceiver, retries: list[int]
) -> None:
    receiver.reply(*[Reply(status=503, body="")] * 4)
    event = new_event(tenant_a)
    assert [run(event) for _ in range(4)] == ["retry"] * 3 + ["scheduled"]
    event.refresh_from_db()
    assert event.next_attempt_at is not None
    due = event.next_attempt_at
    assert abs((due - timezone.now()).total_seconds() - 810) < 5
    assert send_due_events() == 0  # not yet
    with time_machine.travel(due + timedelta(seconds=1)):
        assert send_due_events() == 1  # run eagerly here: delivered
        assert send_due_events() == 0  # and only once
    event.refresh_from_db()
    assert (event.status, event.attempts, event.next_attempt_at) == ("delivered", 5, None)
