"""Cost from published prices, in Decimal, each response at the price in force at its time."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.test import TestCase

from billing.models import BillingSettings, ModelPrice
from billing.pricing import Tokens, cost_of, price_in_force
from billing.settlement import breakdown_of, settle_call
from calls.ledger import end_call, store_progress
from calls.models import CallSession, UsageRecord
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, CallFactory

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
MIXED: dict[str, Any] = {
    "total_tokens": 8_500,
    "input_tokens": 6_100,
    "output_tokens": 2_400,
    "input_token_details": {
        "text_tokens": 1_000,
        "audio_tokens": 5_000,
        "image_tokens": 100,
        "cached_tokens": 3_200,
        "cached_tokens_details": {"text_tokens": 200, "audio_tokens": 3_000, "image_tokens": 0},
    },
    "output_token_details": {"text_tokens": 400, "audio_tokens": 2_000},
}


def start_call(world: TenantWorld, model: str = "gpt-realtime") -> CallSession:
    agent = AgentFactory(tenant=world.tenant, provider="openai", model=model, voice="marin")
    return CallFactory(agent=agent)


def store(call: CallSession, response_id: str, usage: dict[str, Any]) -> None:
    store_progress(
        call.pk,
        transcript=[],
        usage=[{"response_id": response_id, "usage": usage}],
        interrupted_item_ids=[],
        turn_count=1,
        latencies_ms=[],
    )


def test_mixed_usage_costs_what_a_hand_computation_says() -> None:
    price = price_in_force("openai", "gpt-realtime", datetime.datetime(2026, 11, 1, tzinfo=UTC))
    assert price is not None
    fields = UsageRecord.fields_from_usage(MIXED)

    cost = cost_of(
        Tokens(**{k: v for k, v in fields.items() if k in Tokens.__dataclass_fields__}), price
    )

    # gpt-realtime, dollars per million: text 4 / cached 0.40 / out 16; audio 32 / 0.40 / 64;
    # image 5. Cached tokens are part of the input tokens of their kind.
    assert cost.text_input == Decimal("0.003200000")  # (1000 - 200) * 4
    assert cost.cached_text_input == Decimal("0.000080000")  # 200 * 0.40
    assert cost.audio_input == Decimal("0.064000000")  # (5000 - 3000) * 32
    assert cost.cached_audio_input == Decimal("0.001200000")  # 3000 * 0.40
    assert cost.image_input == Decimal("0.000500000")  # 100 * 5
    assert cost.text_output == Decimal("0.006400000")  # 400 * 16
    assert cost.audio_output == Decimal("0.128000000")  # 2000 * 64
    assert cost.total == Decimal("0.203380000")


def test_each_response_is_priced_at_the_price_in_force_at_its_time(tenant_a: TenantWorld) -> None:
    ModelPrice.objects.create(
        provider="openai",
        model="gpt-realtime",
        effective_from=datetime.datetime(2026, 11, 15, tzinfo=UTC),
        text_input=Decimal(4),
        cached_text_input=Decimal("0.40"),
        text_output=Decimal(16),
        audio_input=Decimal(32),
        cached_audio_input=Decimal("0.40"),
        audio_output=Decimal(128),
        image_input=Decimal(5),
        cached_image_input=Decimal("0.50"),
    )
    output_only = {"output_token_details": {"text_tokens": 0, "audio_tokens": 1_000_000}}
    call = start_call(tenant_a)
    with time_machine.travel(datetime.datetime(2026, 11, 10, 12, tzinfo=UTC), tick=False):
        store(call, "resp_before", output_only)
    with time_machine.travel(datetime.datetime(2026, 11, 20, 12, tzinfo=UTC), tick=False):
        store(call, "resp_after", output_only)
        settled = settle_call(call.pk)

    costs = dict(call.usage.values_list("response_id", "cost"))
    assert costs == {"resp_before": Decimal("64.000000000"), "resp_after": Decimal("128.000000000")}
    assert settled.cost == Decimal("192.000000000")


def test_a_call_is_settled_with_the_operators_margin_once_whatever_the_retries(
    tenant_a: TenantWorld,
) -> None:
    BillingSettings.objects.create(
        tenant=tenant_a.tenant, margin_percent=Decimal(20), fee_per_minute=Decimal("0.01")
    )
    call = start_call(tenant_a)
    store(call, "resp_1", MIXED)
    store(call, "resp_2", MIXED)
    CallSession.objects.filter(pk=call.pk).update(duration_ms=90_000)

    first = settle_call(call.pk)
    again = settle_call(call.pk)

    assert first.cost == again.cost == Decimal("0.406760000")
    # 0.40676 * 1.20 + 1.5 minutes * 0.01
    assert first.billed_amount == again.billed_amount == Decimal("0.503112000")
    assert breakdown_of(again).audio_output == Decimal("0.256000000")


def test_ending_a_call_settles_it_and_the_local_provider_costs_nothing(
    tenant_a: TenantWorld,
) -> None:
    call = CallFactory(agent=AgentFactory(tenant=tenant_a.tenant))  # the local provider
    store(call, "resp_1", MIXED)

    with TestCase.captureOnCommitCallbacks(execute=True):
        end_call(call.pk, "client_closed")

    call.refresh_from_db()
    assert call.cost == Decimal(0)
    assert call.billed_amount == Decimal(0)
    assert call.cost_computed_at is not None


def test_a_model_without_a_price_is_stored_unpriced(tenant_a: TenantWorld) -> None:
    call = start_call(tenant_a, model="gpt-future-realtime")
    store(call, "resp_1", MIXED)

    record = call.usage.get()
    assert (record.price, record.cost) == (None, None)
    assert settle_call(call.pk).cost == Decimal(0)
