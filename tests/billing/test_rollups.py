"""Daily roll-ups per tenant, agent and UTC day: recomputed from settled calls, so idempotent."""

from __future__ import annotations

import datetime
import threading
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test import TestCase

from agents.models import Agent
from billing.models import BillingSettings, DailyUsage, ModelPrice
from billing.rollups import reconcile, roll_up_day
from billing.settlement import settle_call
from billing.tasks import reconcile_usage
from calls.ledger import end_call, store_progress
from calls.models import CallSession
from koe.celery import app
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, CallFactory

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
DAY_1 = datetime.date(2026, 3, 10)
DAY_2 = datetime.date(2026, 3, 11)
# 1,000 text tokens in and 1,000 audio tokens out: $0.01 + $0.10 at the prices below.
USAGE: dict[str, Any] = {
    "total_tokens": 2_000,
    "input_tokens": 1_000,
    "output_tokens": 1_000,
    "input_token_details": {"text_tokens": 1_000, "audio_tokens": 0, "cached_tokens": 0},
    "output_token_details": {"text_tokens": 0, "audio_tokens": 1_000},
}
ROLLED_FIELDS = (
    "agent_name",
    "calls",
    "duration_ms",
    "input_text_tokens",
    "output_audio_tokens",
    "cost",
    "billed",
)


def round_prices() -> ModelPrice:
    """gpt-realtime at $10 a million text tokens in and $100 a million audio tokens out."""
    return ModelPrice.objects.create(
        provider="openai",
        model="gpt-realtime",
        effective_from=datetime.datetime(2026, 1, 1, tzinfo=UTC),
        text_input=Decimal(10),
        audio_output=Decimal(100),
    )


@pytest.fixture(autouse=True)
def _prices(db: None) -> None:
    round_prices()


def at(day: datetime.date, hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=UTC)


def agent_of(world: TenantWorld, name: str) -> Agent:
    return AgentFactory(
        tenant=world.tenant, name=name, provider="openai", model="gpt-realtime", voice="marin"
    )


def make_call(
    agent: Agent,
    started: datetime.datetime,
    *,
    minutes: int,
    responses: int,
    settle: bool = True,
    end: bool = True,
) -> CallSession:
    """A call with ``responses`` priced responses, ended ``minutes`` after it started.

    Inside the test's transaction the end's settlement task is never queued (nothing
    commits), as if it had been lost; ``settle`` settles the call directly."""
    with time_machine.travel(started, tick=False):
        call = CallFactory(agent=agent)
        store_progress(
            call.pk,
            transcript=[],
            usage=[{"response_id": f"resp_{n}", "usage": USAGE} for n in range(responses)],
            interrupted_item_ids=[],
            turn_count=responses,
            latencies_ms=[],
        )
    if end:
        with time_machine.travel(started + datetime.timedelta(minutes=minutes), tick=False):
            end_call(call.pk, "client_closed")
    if settle:
        settle_call(call.pk)
    call.refresh_from_db()
    return call


def rows(world: TenantWorld, day: datetime.date) -> list[tuple[Any, ...]]:
    return list(
        DailyUsage.objects.filter(tenant=world.tenant, day=day)
        .order_by("agent_name")
        .values_list(*ROLLED_FIELDS)
    )


@pytest.fixture
def two_days(tenant_a: TenantWorld, tenant_b: TenantWorld) -> dict[str, Agent]:
    """Calls of two agents over two days, with a 10% margin and $0.06 a minute."""
    BillingSettings.objects.create(
        tenant=tenant_a.tenant, margin_percent=Decimal(10), fee_per_minute=Decimal("0.06")
    )
    alice, bob = agent_of(tenant_a, "Alice"), agent_of(tenant_a, "Bob")
    make_call(alice, at(DAY_1, 9), minutes=2, responses=1)
    make_call(alice, at(DAY_1, 23, 58), minutes=3, responses=2)  # ends on day 2
    make_call(bob, at(DAY_1, 14), minutes=1, responses=3)
    make_call(alice, at(DAY_2, 8), minutes=1, responses=1)
    # Not counted: a call not settled yet, a live call, another tenant's call.
    make_call(bob, at(DAY_1, 15), minutes=1, responses=5, settle=False)
    make_call(bob, at(DAY_1, 16), minutes=0, responses=5, settle=False, end=False)
    make_call(agent_of(tenant_b, "Carol"), at(DAY_1, 10), minutes=1, responses=1)
    return {"alice": alice, "bob": bob}


DAY_1_ROWS = [
    # 3 responses at $0.11; $0.33 * 1.10 + 5 minutes * $0.06
    ("Alice", 2, 300_000, 3_000, 3_000, Decimal("0.33"), Decimal("0.663")),
    # $0.33 * 1.10 + 1 minute * $0.06
    ("Bob", 1, 60_000, 3_000, 3_000, Decimal("0.33"), Decimal("0.423")),
]


def test_a_day_is_rolled_up_per_agent_from_its_settled_calls(
    tenant_a: TenantWorld, tenant_b: TenantWorld, two_days: dict[str, Agent]
) -> None:
    roll_up_day(tenant_a.tenant.pk, DAY_1)
    roll_up_day(tenant_a.tenant.pk, DAY_2)

    assert rows(tenant_a, DAY_1) == DAY_1_ROWS
    assert rows(tenant_a, DAY_2) == [
        ("Alice", 1, 60_000, 1_000, 1_000, Decimal("0.11"), Decimal("0.181"))
    ]
    assert (
        DailyUsage.objects.get(tenant=tenant_a.tenant, day=DAY_1, agent_name="Bob").agent
        == (two_days["bob"])
    )
    assert rows(tenant_b, DAY_1) == []  # rolled up only when asked for its tenant


def test_rolling_up_again_recomputes_rather_than_adds(
    tenant_a: TenantWorld, two_days: dict[str, Agent]
) -> None:
    for _ in range(3):
        roll_up_day(tenant_a.tenant.pk, DAY_1)

    assert rows(tenant_a, DAY_1) == DAY_1_ROWS
    assert DailyUsage.objects.filter(tenant=tenant_a.tenant, day=DAY_1).count() == 2

    # The call that was not settled is, later: the next roll-up counts it, once.
    missed = CallSession.objects.get(agent=two_days["bob"], started_at=at(DAY_1, 15))
    settle_call(missed.pk)
    roll_up_day(tenant_a.tenant.pk, DAY_1)
    roll_up_day(tenant_a.tenant.pk, DAY_1)

    bob = DailyUsage.objects.get(tenant=tenant_a.tenant, day=DAY_1, agent_name="Bob")
    assert (bob.calls, bob.cost, bob.output_audio_tokens) == (2, Decimal("0.88"), 8_000)


def test_a_deleted_agents_calls_stay_rolled_up_under_its_name(
    tenant_a: TenantWorld, two_days: dict[str, Agent]
) -> None:
    roll_up_day(tenant_a.tenant.pk, DAY_1)
    two_days["bob"].delete()

    roll_up_day(tenant_a.tenant.pk, DAY_1)

    assert rows(tenant_a, DAY_1) == DAY_1_ROWS
    assert DailyUsage.objects.get(tenant=tenant_a.tenant, day=DAY_1, agent_name="Bob").agent is None


def test_ending_a_call_settles_it_and_rolls_up_its_day(tenant_a: TenantWorld) -> None:
    alice = agent_of(tenant_a, "Alice")
    call = make_call(alice, at(DAY_1, 9), minutes=2, responses=2, settle=False, end=False)

    with (
        time_machine.travel(at(DAY_1, 9, 2), tick=False),
        TestCase.captureOnCommitCallbacks(execute=True),
    ):
        end_call(call.pk, "client_closed")

    call.refresh_from_db()
    assert call.cost == Decimal("0.22")
    assert rows(tenant_a, DAY_1) == [
        ("Alice", 1, 120_000, 2_000, 2_000, Decimal("0.22"), Decimal("0.22"))
    ]


def test_reconciliation_settles_a_call_whose_settlement_was_missed(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    alice = agent_of(tenant_a, "Alice")
    missed = make_call(alice, at(DAY_1, 22), minutes=1, responses=2, settle=False)
    make_call(agent_of(tenant_b, "Carol"), at(DAY_2, 9), minutes=1, responses=1)
    # A roll-up that went wrong earlier is put right too.
    DailyUsage.objects.create(
        tenant=tenant_b.tenant, agent_name="Carol", day=DAY_2, calls=7, cost=Decimal(9)
    )
    assert missed.cost_computed_at is None
    assert not DailyUsage.objects.filter(tenant=tenant_a.tenant).exists()

    with time_machine.travel(at(DAY_2, 0, 20), tick=False):
        outcome = reconcile_usage.delay().get()

    missed.refresh_from_db()
    assert missed.cost == Decimal("0.22")
    assert missed.cost_computed_at is not None
    assert outcome == {"settled": 1, "days": 4}  # yesterday and today of both tenants
    assert rows(tenant_a, DAY_1) == [
        ("Alice", 1, 60_000, 2_000, 2_000, Decimal("0.22"), Decimal("0.22"))
    ]
    assert rows(tenant_b, DAY_2) == [
        ("Carol", 1, 60_000, 1_000, 1_000, Decimal("0.11"), Decimal("0.11"))
    ]
    # Run again: nothing left to settle, the same rows.
    with time_machine.travel(at(DAY_2, 0, 20), tick=False):
        again = reconcile()
    assert again.settled_call_ids == []
    assert rows(tenant_a, DAY_1)[0][-1] == Decimal("0.22")


def test_the_reconciliation_is_on_the_daily_beat_schedule() -> None:
    entry = app.conf.beat_schedule["reconcile-usage"]
    assert entry["task"] == reconcile_usage.name == "billing.tasks.reconcile_usage"
    assert entry["schedule"].hour == {0}


@pytest.mark.django_db(transaction=True)
def test_two_roll_ups_at_once_leave_one_set_of_rows(
    tenant_a: TenantWorld, two_days: dict[str, Agent]
) -> None:
    # Here every end commits, so each call was settled (and its day rolled up) already.
    expected = rows(tenant_a, DAY_1)
    assert [row[1] for row in expected] == [2, 2]
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            roll_up_day(tenant_a.tenant.pk, DAY_1)
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert failures == []
    assert rows(tenant_a, DAY_1) == expected
