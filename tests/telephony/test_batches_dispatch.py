"""The batch dispatcher against the fake Twilio: the batch's concurrency, the window in
each callee's time zone, the tenant's cap and budget, retries driven by signed status
callbacks, completion, and the Celery task that runs it all."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection, transaction
from django.utils import timezone

from agents.realtime.access import AccessDenied
from agents.telephony import outbound
from agents.telephony.batch_dispatch import dispatch, dispatch_due, in_window
from agents.telephony.batches import BatchSpec, EntrySpec, cancel_batch, create_batch
from agents.telephony.models import BatchEntry, CallBatch, PhoneCall
from agents.telephony.tasks import dispatch_batches
from calls.models import CallSession
from koe.celery import app
from tenancy.models import Tenant
from tests.conftest import TenantWorld
from tests.fakes.twilio_rest import FakeTwilioRest, ScriptedError
from tests.telephony.conftest import ACCOUNT_SID, AUTH_TOKEN, NUMBER, Line, make_line
from tests.telephony.test_batches_api import NEW_YORK_MORNING
from tests.telephony.test_outbound import callback

pytestmark = pytest.mark.django_db
STATUS_PATH = "/v1/telephony/twilio/status"


def make_batch(
    world: TenantWorld,
    line: Line,
    numbers: list[str],
    *,
    zones: list[str] | None = None,
    **fields: Any,
) -> CallBatch:
    settings = {
        "window_start": time(9),
        "window_end": time(18),
        "time_zone": "America/New_York",
        "concurrency": 2,
        "max_attempts": 2,
        "retry_delay_minutes": 30,
        **fields,
    }
    entries = [
        EntrySpec(to=number, time_zone=(zones or [""] * len(numbers))[index])
        for index, number in enumerate(numbers)
    ]
    spec = BatchSpec(
        agent_id=line.agent.public_id,
        from_number=NUMBER,
        name="Recalls",
        entries=entries,
        **settings,
    )
    return create_batch(world.tenant, spec)


def numbers(count: int) -> list[str]:
    return [f"+1415555{index:04d}" for index in range(count)]


def dialled(carrier: FakeTwilioRest) -> list[str]:
    return [request.form["To"] for request in carrier.requests]


def end_call(to: str, status: str) -> None:
    """Twilio reports how the call to ``to`` ended (a signed status callback)."""
    entry = BatchEntry.objects.select_related("last_phone_call").get(to=to)
    assert entry.last_phone_call is not None
    sid = entry.last_phone_call.carrier_call_id
    assert callback(STATUS_PATH, {"CallSid": sid, "CallStatus": status}).status_code == 204


def statuses(batch: CallBatch) -> dict[str, str]:
    return dict(batch.entries.values_list("to", "status"))


@pytest.fixture
def carrier(settings: Any) -> Iterator[FakeTwilioRest]:
    with FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN) as fake:
        settings.KOE_TWILIO_API_URL = fake.base_url
        yield fake


@pytest.fixture
def batch_line(tenant_a: TenantWorld) -> Line:
    return make_line(tenant_a, greeting="Hello, this is Acme Dental calling.")


@pytest.fixture
def morning() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NEW_YORK_MORNING, tick=False) as traveller:
        yield traveller


def test_no_more_calls_at_once_than_the_batch_allows(
    tenant_a: TenantWorld,
    batch_line: Line,
    carrier: FakeTwilioRest,
    morning: time_machine.Traveller,
) -> None:
    callees = numbers(5)
    batch = make_batch(tenant_a, batch_line, callees, concurrency=2)

    assert dispatch_due() == 2
    assert dispatch_due() == 0  # a second tick while both ring changes nothing
    assert dialled(carrier) == callees[:2]
    assert batch.entries.filter(status="calling").count() == 2

    end_call(callees[0], "completed")
    assert dispatch_due() == 1
    assert dialled(carrier) == callees[:3]
    assert statuses(batch)[callees[0]] == "completed"


def test_calls_start_only_inside_the_window_of_the_callees_day(
    tenant_a: TenantWorld, batch_line: Line, carrier: FakeTwilioRest
) -> None:
    new_york, tokyo = "+12125550100", "+81355550100"
    # 13:30 UTC is 08:30 in New York (before the window) and 22:30 in Tokyo (after it).
    with time_machine.travel(datetime(2026, 3, 2, 13, 30, tzinfo=UTC), tick=False) as clock:
        make_batch(
            tenant_a, batch_line, [new_york, tokyo], zones=["America/New_York", "Asia/Tokyo"]
        )
        assert dispatch_due() == 0
        clock.move_to(datetime(2026, 3, 2, 14, 0, tzinfo=UTC))  # 09:00 in New York
        assert dispatch_due() == 1
        assert dialled(carrier) == [new_york]
        clock.move_to(datetime(2026, 3, 3, 0, 0, tzinfo=UTC))  # 09:00 in Tokyo
        assert dispatch_due() == 1
        assert dialled(carrier) == [new_york, tokyo]


def test_a_window_may_pass_midnight() -> None:
    assert in_window(time(22), time(2), time(23, 30))
    assert in_window(time(22), time(2), time(1, 59))
    assert not in_window(time(22), time(2), time(2))
    assert not in_window(time(9), time(18), time(18))
    assert in_window(time(9), time(18), time(9))


def test_a_full_tenant_cap_leaves_the_entries_pending(
    tenant_a: TenantWorld,
    batch_line: Line,
    carrier: FakeTwilioRest,
    morning: time_machine.Traveller,
) -> None:
    Tenant.objects.filter(pk=tenant_a.tenant.pk).update(max_concurrent_calls=1)
    agent = batch_line.agent
    live = CallSession.objects.create(
        tenant=tenant_a.tenant,
        agent=agent,
        agent_version=agent.current_version,
        agent_name=agent.name,
        version_number=1,
        channel="phone",
        provider="local",
        model="koe-local",
        status="active",
        started_at=timezone.now(),
    )
    batch = make_batch(tenant_a, batch_line, numbers(3))

    assert dispatch_due() == 0
    assert carrier.requests == []
    assert set(batch.entries.values_list("status", "attempts")) == {("pending", 0)}
    batch.refresh_from_db()
    assert batch.status == "running" and "concurrent calls are in use" in batch.last_error

    CallSession.objects.filter(pk=live.pk).update(status="ended")
    assert dispatch_due() == 1  # the tenant's cap of one, not the batch's two
    batch.refresh_from_db()
    assert batch.last_error == ""


def test_a_spent_budget_leaves_the_entries_pending(
    tenant_a: TenantWorld,
    batch_line: Line,
    carrier: FakeTwilioRest,
    morning: time_machine.Traveller,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def spent(tenant: Tenant) -> None:
        raise AccessDenied("The budget is spent.", "budget_exceeded")

    monkeypatch.setattr(outbound, "check_budget", spent)
    batch = make_batch(tenant_a, batch_line, numbers(3))

    assert dispatch_due() == 0  # place_call answered 429: the rest wait too
    assert set(batch.entries.values_list("status", "attempts")) == {("pending", 0)}
    batch.refresh_from_db()
    assert batch.last_error == "Waiting: The budget is spent."


def test_no_answer_and_busy_are_called_again_after_the_delay_then_settled(
    tenant_a: TenantWorld,
    batch_line: Line,
    carrier: FakeTwilioRest,
    morning: time_machine.Traveller,
) -> None:
    first, second = numbers(2)
    batch = make_batch(tenant_a, batch_line, [first, second], max_attempts=2)
    dispatch_due()

    end_call(first, "no-answer")
    end_call(second, "busy")
    entry = batch.entries.get(to=first)
    assert (entry.status, entry.attempts, entry.last_status) == ("pending", 1, "no-answer")
    assert entry.next_attempt_at == timezone.now() + timedelta(minutes=30)
    assert dispatch_due() == 0  # not yet due

    morning.shift(timedelta(minutes=31))
    assert dispatch_due() == 2
    assert dialled(carrier) == [first, second, first, second]
    end_call(first, "completed")
    end_call(second, "busy")  # the last attempt

    assert statuses(batch) == {first: "completed", second: "busy"}
    batch.refresh_from_db()
    assert batch.status == "completed" and batch.completed_at == timezone.now()


def test_a_carrier_refusal_is_retried_then_fails_the_entry(
    tenant_a: TenantWorld,
    batch_line: Line,
    carrier: FakeTwilioRest,
    morning: time_machine.Traveller,
) -> None:
    (callee,) = numbers(1)
    batch = make_batch(tenant_a, batch_line, [callee], max_attempts=2)
    refusal = ScriptedError(400, 21215, "Geo permissions do not allow this call.")
    carrier.fail_next(refusal, refusal)

    dispatch_due()
    entry = batch.entries.get()
    assert (entry.status, entry.attempts) == ("pending", 1)
    assert "Geo permissions" in entry.last_error
    morning.shift(timedelta(minutes=30))
    dispatch_due()

    entry.refresh_from_db()
    assert (entry.status, entry.attempts, entry.last_status) == ("failed", 2, "failed")
    batch.refresh_from_db()
    assert batch.status == "completed"


def test_a_cancelled_batch_calls_no_one_else_and_does_not_retry(
    tenant_a: TenantWorld,
    batch_line: Line,
    carrier: FakeTwilioRest,
    morning: time_machine.Traveller,
) -> None:
    callees = numbers(3)
    batch = make_batch(tenant_a, batch_line, callees, concurrency=1, max_attempts=3)
    dispatch_due()

    cancel_batch(batch)
    end_call(callees[0], "no-answer")
    dispatch_due()

    assert dialled(carrier) == callees[:1]
    assert statuses(batch) == {
        callees[0]: "no_answer",
        callees[1]: "cancelled",
        callees[2]: "cancelled",
    }
    batch.refresh_from_db()
    assert batch.status == "cancelled"


def test_a_deleted_agent_pauses_the_batch_and_says_why(
    tenant_a: TenantWorld,
    batch_line: Line,
    carrier: FakeTwilioRest,
    morning: time_machine.Traveller,
) -> None:
    batch = make_batch(tenant_a, batch_line, numbers(2))
    batch_line.agent.delete()

    assert dispatch_due() == 0
    batch.refresh_from_db()
    assert batch.status == "paused" and "agent was deleted" in batch.last_error
    assert set(batch.entries.values_list("status", "attempts")) == {("pending", 0)}
    assert carrier.requests == []


def test_an_end_reported_before_the_entry_knew_its_call_is_settled_next_tick(
    tenant_a: TenantWorld,
    batch_line: Line,
    carrier: FakeTwilioRest,
    morning: time_machine.Traveller,
) -> None:
    (callee,) = numbers(1)
    batch = make_batch(tenant_a, batch_line, [callee])
    dispatch_due()
    # As if the callback had come between the carrier's answer and the entry's link.
    PhoneCall.objects.update(status="completed")

    dispatch_due()

    assert statuses(batch) == {callee: "completed"}


def test_the_beat_task_runs_the_dispatcher(
    tenant_a: TenantWorld,
    batch_line: Line,
    carrier: FakeTwilioRest,
    morning: time_machine.Traveller,
    settings: Any,
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True  # as on the embedded default, also under REDIS_URL
    make_batch(tenant_a, batch_line, numbers(3), concurrency=3)
    schedule = app.conf.beat_schedule["dispatch-batches"]
    assert schedule["task"] == dispatch_batches.name and schedule["schedule"] <= 30

    placed = dispatch_batches.delay()

    assert placed.get() == 3
    assert BatchEntry.objects.filter(status="calling").count() == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_batch_another_dispatcher_holds_is_skipped_not_waited_for(
    tenant_a: TenantWorld,
    batch_line: Line,
    carrier: FakeTwilioRest,
    morning: time_machine.Traveller,
) -> None:
    batch = make_batch(tenant_a, batch_line, numbers(3), concurrency=2)
    locked, done = threading.Event(), threading.Event()

    def other_dispatcher() -> None:
        try:
            with transaction.atomic():
                CallBatch.objects.select_for_update().get(pk=batch.pk)
                locked.set()
                done.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=other_dispatcher)
    holder.start()
    assert locked.wait(10)
    try:
        assert dispatch(batch.pk) == 0
    finally:
        done.set()
        holder.join(10)

    assert carrier.requests == []
    assert dispatch(batch.pk) == 2
