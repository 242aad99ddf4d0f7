"""Monthly budgets: cached spending, notices to owners at 80% and 100%, and a hard budget that
refuses new calls and session tokens and ends live calls past the overrun."""

from __future__ import annotations

import asyncio
import datetime
from decimal import Decimal
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core import mail
from django.test import Client, TestCase
from django.utils import timezone

from agents.models import Agent, WidgetKey
from agents.realtime import watchdog
from billing import budgets
from billing.models import BillingSettings, BudgetMode, ModelPrice
from billing.tasks import settle_call_task
from calls.ledger import end_call, store_progress
from calls.models import CallSession, CallStatus, SessionToken, UsageRecord
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, CallFactory
from tests.realtime.conftest import auth_headers, scripted_provider
from tests.realtime.doubles import ScriptedProvider, usage
from tests.realtime.helpers import connect, receive, receive_until, refused

pytestmark = pytest.mark.django_db
__all__ = ["scripted_provider"]  # the broker's fixture, for the calls opened here

OWNER = "owner@acme-dental.example"
ORIGIN = "https://shop.example"


@pytest.fixture(autouse=True)
def _dollar_responses(db: None) -> None:
    """From now on each scripted response (8 audio tokens out) costs exactly $1."""
    ModelPrice.objects.create(
        provider="openai",
        model="gpt-realtime",
        effective_from=timezone.now() - datetime.timedelta(minutes=1),
        audio_output=Decimal(125_000),
    )


def budget_for(world: TenantWorld, amount: str, mode: str, **fields: Any) -> BillingSettings:
    return BillingSettings.objects.create(
        tenant=world.tenant, monthly_budget=Decimal(amount), budget_mode=mode, **fields
    )


def agent_of(world: TenantWorld) -> Agent:
    return AgentFactory(tenant=world.tenant, provider="openai", model="gpt-realtime", voice="alloy")


def start_call(agent: Agent, **fields: Any) -> CallSession:
    return CallFactory(agent=agent, **fields)


def settled_call(agent: Agent, billed: str, started: datetime.datetime | None = None) -> None:
    now = timezone.now()
    start_call(
        agent,
        started_at=started or now,
        status=CallStatus.ENDED,
        cost=Decimal(billed),
        billed_amount=Decimal(billed),
        cost_computed_at=now,
    )


def store(call: CallSession, responses: int, first: int = 0) -> None:
    store_progress(
        call.pk,
        transcript=[],
        usage=[
            {"response_id": f"resp_{n}", "usage": usage()} for n in range(first, first + responses)
        ],
        interrupted_item_ids=[],
        turn_count=responses,
        latencies_ms=[],
    )


def finish_call(agent: Agent, responses: int) -> None:
    """A call with ``responses`` dollar responses that ends (and settles, in its task)."""
    call = start_call(agent)
    store(call, responses)
    with TestCase.captureOnCommitCallbacks(execute=True):
        end_call(call.pk, "client_closed")


# --- month-to-date spending ------------------------------------------------------------


def test_spending_is_cached_and_grows_with_each_stored_response(
    tenant_a: TenantWorld, django_assert_num_queries: Any
) -> None:
    BillingSettings.objects.create(tenant=tenant_a.tenant, margin_percent=Decimal(20))
    agent = agent_of(tenant_a)
    settled_call(agent, "10")
    settled_call(
        agent, "50", started=timezone.now() - datetime.timedelta(days=40)
    )  # not this month
    live = start_call(agent)
    store(live, 1)

    # Settled calls' billed amounts, plus the live call's usage at the 20% margin.
    assert budgets.budget_of(tenant_a.tenant.pk).spend == Decimal("11.2")
    with django_assert_num_queries(0):
        assert budgets.budget_of(tenant_a.tenant.pk).spend == Decimal("11.2")

    with TestCase.captureOnCommitCallbacks(execute=True):
        store(live, 1, first=1)
    with django_assert_num_queries(0):
        assert budgets.budget_of(tenant_a.tenant.pk).spend == Decimal("12.4")

    settle_call_task.delay(live.pk)
    assert budgets.budget_of(tenant_a.tenant.pk).spend == Decimal("12.4")  # recounted, as billed
    assert budgets.budget_of(tenant_a.tenant.pk).monthly_budget is None


# --- soft budget: notices ----------------------------------------------------------------


def test_owners_are_emailed_at_80_and_100_percent_once_each(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    budget_for(tenant_a, "10", BudgetMode.SOFT)
    agent = agent_of(tenant_a)
    other = agent_of(tenant_b)

    finish_call(agent, 7)  # $7: 70%
    finish_call(other, 20)  # no budget: nothing to say
    assert mail.outbox == []

    finish_call(agent, 1)  # $8: 80%
    finish_call(agent, 1)  # $9
    assert [message.subject for message in mail.outbox] == [
        "Acme Dental has used 80% of its monthly budget on Koe"
    ]
    assert mail.outbox[0].to == [OWNER]  # the owners only, not the other members
    assert "spent $8.00 of its $10.00 budget" in mail.outbox[0].body
    assert "soft budget" in mail.outbox[0].body

    finish_call(agent, 1)  # $10: 100%
    finish_call(agent, 1)  # $11
    assert [message.subject for message in mail.outbox][1:] == [
        "Acme Dental has reached its monthly budget on Koe"
    ]
    # A second worker (or a retried task) finds nothing left to send.
    assert budgets.send_due_notices(tenant_a.tenant.pk) == []
    assert len(mail.outbox) == 2
    month = budgets.month_of(timezone.now())
    billing = BillingSettings.objects.get(tenant=tenant_a.tenant)
    assert (billing.notified_80_month, billing.notified_100_month) == (month, month)
    # Soft: calls still go on.
    assert not budgets.budget_of(tenant_a.tenant.pk).refuses_new_calls


def test_two_workers_that_both_see_a_threshold_crossed_send_one_notice(
    tenant_a: TenantWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    budget_for(tenant_a, "10", BudgetMode.SOFT)
    settled_call(agent_of(tenant_a), "8.50")
    seen_by_both = budgets.refresh(tenant_a.tenant.pk)
    assert seen_by_both.notices_due == [80]
    monkeypatch.setattr(budgets, "refresh", lambda tenant_id: seen_by_both)

    first = budgets.send_due_notices(tenant_a.tenant.pk)
    second = budgets.send_due_notices(tenant_a.tenant.pk)

    assert (first, second) == ([80], [])
    assert len(mail.outbox) == 1


def test_a_jump_past_both_thresholds_sends_the_100_percent_notice_only(
    tenant_a: TenantWorld,
) -> None:
    budget_for(tenant_a, "10", BudgetMode.HARD, overrun_percent=Decimal(20))

    finish_call(agent_of(tenant_a), 12)

    assert [message.subject for message in mail.outbox] == [
        "Acme Dental has reached its monthly budget on Koe"
    ]
    assert "new calls are refused" in mail.outbox[0].body
    assert budgets.send_due_notices(tenant_a.tenant.pk) == []


def test_a_live_call_crossing_a_threshold_notifies_before_it_ends(tenant_a: TenantWorld) -> None:
    budget_for(tenant_a, "10", BudgetMode.SOFT)
    live = start_call(agent_of(tenant_a))
    budgets.budget_of(tenant_a.tenant.pk)  # the call path has read (and cached) it

    with TestCase.captureOnCommitCallbacks(execute=True):
        store(live, 8)

    assert [message.subject for message in mail.outbox] == [
        "Acme Dental has used 80% of its monthly budget on Koe"
    ]


# --- hard budget: refusals -----------------------------------------------------------------


def _open(world: TenantWorld, agent: Agent) -> tuple[dict[str, Any], int] | str:
    """Open a call: the refusal (event, close code), or the first event's type."""

    async def scenario() -> tuple[dict[str, Any], int] | str:
        communicator = await connect(
            f"/v1/realtime?model={agent.public_id}", auth_headers(world.secret)
        )
        first = await receive(communicator)
        if first["type"] == "error":
            closing = await communicator.receive_output(timeout=5)
            await communicator.disconnect()
            return first, closing.get("code", 1000)
        await communicator.disconnect()
        return str(first["type"])

    return asyncio.run(scenario())


@pytest.mark.django_db(transaction=True)
def test_a_tenant_at_its_hard_limit_cannot_open_a_call(
    tenant_a: TenantWorld, tenant_b: TenantWorld, scripted_provider: type[ScriptedProvider]
) -> None:
    budget_for(tenant_a, "10", BudgetMode.HARD)
    agent = agent_of(tenant_a)
    settled_call(agent, "9.99")
    assert _open(tenant_a, agent) == "session.created"  # under the limit

    settled_call(agent, "0.01")
    budgets.forget(tenant_a.tenant.pk)  # as its settlement task would refresh it
    refusal = _open(tenant_a, agent)

    assert isinstance(refusal, tuple)
    event, code = refusal
    assert event["type"] == "error"
    assert event["error"]["code"] == "budget_exceeded"
    assert event["error"]["type"] == "rate_limit_error"
    assert "spending limit for the month" in event["error"]["message"]
    assert code == 4029
    assert CallSession.objects.filter(tenant=tenant_a.tenant).count() == 3  # none opened
    assert len(scripted_provider.connections) == 1
    # Other tenants are not affected.
    assert _open(tenant_b, agent_of(tenant_b)) == "session.created"


@pytest.mark.django_db(transaction=True)
def test_a_soft_budget_never_refuses_calls(
    tenant_a: TenantWorld, scripted_provider: type[ScriptedProvider]
) -> None:
    budget_for(tenant_a, "10", BudgetMode.SOFT)
    agent = agent_of(tenant_a)
    settled_call(agent, "25")

    assert _open(tenant_a, agent) == "session.created"


def test_no_session_tokens_are_minted_at_the_hard_limit(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    budget_for(tenant_a, "10", BudgetMode.HARD)
    agent = AgentFactory(tenant=tenant_a.tenant)
    key = WidgetKey.objects.create(agent=agent, allowed_origins=[ORIGIN])
    settled_call(agent, "10")

    api = Client().post(
        "/v1/realtime/client_secrets",
        {"session": {"type": "realtime", "model": agent.public_id}},
        content_type="application/json",
        headers={"Authorization": f"Bearer {tenant_a.secret}"},
    )
    widget = Client().post(
        "/v1/widget/client_secrets",
        {"key": key.key, "agent": agent.public_id},
        content_type="application/json",
        headers={"Origin": ORIGIN},
    )

    for response in (api, widget):
        assert response.status_code == 429
        error = response.json()["error"]
        assert (error["code"], error["type"]) == ("budget_exceeded", "rate_limit_error")
        assert "spending limit for the month" in error["message"]
    assert widget["Access-Control-Allow-Origin"] == ORIGIN  # the widget can read why
    assert not SessionToken.objects.exists()
    other = AgentFactory(tenant=tenant_b.tenant)
    minted = Client().post(
        "/v1/realtime/client_secrets",
        {"session": {"type": "realtime", "model": other.public_id}},
        content_type="application/json",
        headers={"Authorization": f"Bearer {tenant_b.secret}"},
    )
    assert minted.status_code == 200


# --- hard budget: a live call past the overrun -----------------------------------------------


async def _stored(count: int) -> None:
    deadline = asyncio.get_running_loop().time() + 5
    while await database_sync_to_async(UsageRecord.objects.count)() < count:
        assert asyncio.get_running_loop().time() < deadline, "the usage was never stored"
        await asyncio.sleep(0.01)


@pytest.mark.django_db(transaction=True)
def test_a_live_call_past_the_overrun_is_ended_with_reason_budget(
    tenant_a: TenantWorld,
    scripted_provider: type[ScriptedProvider],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(watchdog, "WATCHDOG_INTERVAL_SECONDS", 0.02)
    settings.KOE_BUDGET_CHECK_SECONDS = 0.01  # every tick
    # $2 a month; live calls end at $3 (50% over).
    budget_for(tenant_a, "2", BudgetMode.HARD, overrun_percent=Decimal(50))
    agent = agent_of(tenant_a)
    path = f"/v1/realtime?model={agent.public_id}"

    async def scenario() -> tuple[list[dict[str, Any]], tuple[dict[str, Any], int]]:
        communicator = await connect(path, auth_headers(tenant_a.secret))
        await receive(communicator)
        connection = scripted_provider.connections[0]
        for response_id in ("resp_1", "resp_2"):
            connection.speak(response_id)
            await receive_until(communicator, "response.done")
        await _stored(2)
        # $2: the budget is spent, so no new call opens, but this one goes on.
        second: WebsocketCommunicator = await connect(path, auth_headers(tenant_a.secret))
        refusal = await refused(second)
        assert await communicator.receive_nothing(timeout=0.2)

        connection.speak("resp_3")  # $3: past the overrun
        seen = await receive_until(communicator, "error")
        await communicator.disconnect()
        return seen, refusal

    seen, (refusal, code) = asyncio.run(scenario())

    assert seen[-1]["error"]["code"] == "call_ended_budget"
    assert seen[-1]["error"]["message"] == "The monthly spending limit was reached."
    assert (refusal["error"]["code"], code) == ("budget_exceeded", 4029)
    call = CallSession.objects.get()
    assert (call.status, call.end_reason) == ("ended", "budget")
    assert call.billed_amount == Decimal(3)
    assert scripted_provider.connections[0].closed
    # The owners heard at 100%, once.
    assert [message.subject for message in mail.outbox] == [
        "Acme Dental has reached its monthly budget on Koe"
    ]
