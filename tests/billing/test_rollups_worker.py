"""Roll-ups on the real Redis broker with a real Celery worker process: a task run three
times (as retries and redeliveries run it) leaves the same totals."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from billing.models import BillingSettings, DailyUsage
from billing.tasks import roll_up_day_task, settle_call_task
from calls.models import CallSession
from tests.billing.test_rollups import (
    DAY_1,
    ROLLED_FIELDS,
    agent_of,
    at,
    make_call,
    round_prices,
)
from tests.conftest import TenantWorld
from tests.live import Worker, celery_worker

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

EXPECTED = [
    # 3 responses at $0.11 = $0.33; * 1.10 + 5 minutes * $0.06
    ("Alice", 2, 300_000, 3_000, 3_000, Decimal("0.33"), Decimal("0.663")),
    # 2 responses = $0.22; * 1.10 + 1 minute * $0.06
    ("Bob", 1, 60_000, 2_000, 2_000, Decimal("0.22"), Decimal("0.302")),
]


@pytest.fixture
def worker(settings: Any) -> Iterator[Worker]:
    settings.CELERY_TASK_ALWAYS_EAGER = False  # the tasks go to the worker through Redis
    with celery_worker() as running:
        yield running


@pytest.fixture(autouse=True)
def _prices(db: None) -> None:
    round_prices()


def rows(world: TenantWorld) -> list[tuple[Any, ...]]:
    return list(
        DailyUsage.objects.filter(tenant=world.tenant, day=DAY_1)
        .order_by("agent_name")
        .values_list(*ROLLED_FIELDS)
    )


def wait_until(condition: Any, worker: Worker, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, worker.output()
        time.sleep(0.1)


def test_the_roll_up_task_run_three_times_on_a_worker_gives_the_same_totals(
    tenant_a: TenantWorld, worker: Worker
) -> None:
    BillingSettings.objects.create(
        tenant=tenant_a.tenant, margin_percent=Decimal(10), fee_per_minute=Decimal("0.06")
    )
    alice, bob = agent_of(tenant_a, "Alice"), agent_of(tenant_a, "Bob")
    # Each end commits and queues its settlement, which the worker runs (and rolls up).
    calls = [
        make_call(alice, at(DAY_1, 9), minutes=2, responses=1, settle=False),
        make_call(alice, at(DAY_1, 11), minutes=3, responses=2, settle=False),
        make_call(bob, at(DAY_1, 14), minutes=1, responses=2, settle=False),
    ]
    wait_until(
        lambda: (
            not CallSession.objects.filter(cost_computed_at__isnull=True).exists()
            and rows(tenant_a) == EXPECTED
        ),
        worker,
    )

    runs = [roll_up_day_task.delay(tenant_a.tenant.pk, DAY_1.isoformat()) for _ in range(3)]
    assert [run.get(timeout=30) for run in runs] == [DAY_1.isoformat()] * 3
    assert rows(tenant_a) == EXPECTED

    # The settlement redelivered three times: the same cost, the same roll-up.
    settled = [settle_call_task.delay(calls[2].pk) for _ in range(3)]
    assert [run.get(timeout=30) for run in settled] == ["0.220000000"] * 3
    assert rows(tenant_a) == EXPECTED
    assert DailyUsage.objects.filter(tenant=tenant_a.tenant).count() == 2
    assert "roll_up_day_task[" in worker.output()
