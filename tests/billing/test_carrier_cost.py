"""Carrier minutes in a phone call's cost: priced at the carrier's price in force when the
call started, part of the billed amount, the budget, the roll-ups, the usage page and API."""

from __future__ import annotations

import csv
import datetime
import io
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from agents.telephony.admission import admit, open_phone_call
from agents.telephony.models import Carrier as TelephonyCarrier
from agents.telephony.models import Direction
from billing import budgets
from billing.models import BillingSettings, Carrier, CarrierDirection, CarrierPrice, DailyUsage
from billing.pricing import carrier_minutes, carrier_price_in_force
from billing.rollups import roll_up_day
from billing.settlement import breakdown_of, settle_call
from calls.models import CallSession
from tests.api import api_client
from tests.billing.test_pricing import MIXED, store
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, CallFactory
from tests.telephony.conftest import CALLER, make_line

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
DAY = datetime.datetime(2026, 11, 10, 9, tzinfo=UTC)
TWILIO_INBOUND = Decimal("0.0085")  # seeded from Twilio's published US rates
TWILIO_OUTBOUND = Decimal("0.013")


def phone_call(
    world: TenantWorld,
    *,
    duration_ms: int = 61_000,
    carrier: str = "twilio",
    direction: str = "inbound",
    started_at: datetime.datetime = DAY,
    with_tokens: bool = True,
    **agent_fields: Any,
) -> CallSession:
    """An ended phone call of an openai agent (one MIXED response, when asked for)."""
    fields: dict[str, Any] = {"provider": "openai", "model": "gpt-realtime", "voice": "marin"}
    fields.update(agent_fields)
    agent = AgentFactory(tenant=world.tenant, **fields)
    call = CallFactory(
        agent=agent,
        channel="phone",
        carrier=carrier,
        carrier_direction=direction,
        started_at=started_at,
    )
    if with_tokens:
        with time_machine.travel(started_at, tick=False):
            store(call, "resp_1", MIXED)
    CallSession.objects.filter(pk=call.pk).update(
        status="ended",
        duration_ms=duration_ms,
        ended_at=started_at + datetime.timedelta(milliseconds=duration_ms),
    )
    return call


# --- minutes and prices ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration_ms", "minutes"),
    [(0, 0), (1, 1), (59_999, 1), (60_000, 1), (60_001, 2), (61_000, 2), (600_000, 10)],
)
def test_carriers_bill_every_started_minute(duration_ms: int, minutes: int) -> None:
    assert carrier_minutes(duration_ms) == minutes


def test_twilios_published_us_rates_are_seeded_and_telnyx_has_none() -> None:
    inbound = carrier_price_in_force("twilio", "inbound", DAY)
    outbound = carrier_price_in_force("twilio", "outbound", DAY)

    assert inbound is not None and inbound.per_minute == TWILIO_INBOUND
    assert outbound is not None and outbound.per_minute == TWILIO_OUTBOUND
    assert inbound.currency == "USD"
    assert inbound.source.startswith("https://support.twilio.com/")
    assert carrier_price_in_force("telnyx", "inbound", DAY) is None


def test_the_billing_carriers_and_directions_cover_the_telephony_ones() -> None:
    # The platform core names carriers by string: they must be the ones a phone call uses.
    assert set(TelephonyCarrier.values) <= set(Carrier.values)
    assert set(Direction.values) <= set(CarrierDirection.values)


# --- settling ------------------------------------------------------------------------------


def test_a_phone_calls_carrier_minutes_are_part_of_its_cost_and_billed_amount(
    tenant_a: TenantWorld,
) -> None:
    BillingSettings.objects.create(
        tenant=tenant_a.tenant, margin_percent=Decimal(20), fee_per_minute=Decimal("0.01")
    )
    call = phone_call(tenant_a)  # 61 s: 2 started minutes

    settled = settle_call(call.pk)

    assert settled.carrier_minutes == 2
    assert settled.carrier_cost == Decimal("0.017000000")  # 2 x $0.0085
    # One MIXED response at gpt-realtime's prices is $0.20338 (see test_pricing).
    assert settled.cost == Decimal("0.220380000")
    # The margin applies to the whole cost; the fee to the call's 61/60 minutes.
    expected = Decimal("0.22038") * Decimal("1.2") + Decimal(61) / Decimal(60) * Decimal("0.01")
    assert settled.billed_amount == expected.quantize(Decimal("0.000000001"))
    assert settled.billed_amount == Decimal("0.274622667")
    breakdown = breakdown_of(settled)
    assert breakdown.carrier == Decimal("0.017000000")
    assert breakdown.total == settled.cost


def test_settling_twice_changes_nothing(tenant_a: TenantWorld) -> None:
    BillingSettings.objects.create(tenant=tenant_a.tenant, margin_percent=Decimal(10))
    call = phone_call(tenant_a, duration_ms=125_000, direction="outbound")

    first = settle_call(call.pk)
    again = settle_call(call.pk)

    assert (first.carrier_minutes, first.carrier_cost) == (3, Decimal("0.039000000"))
    assert (again.carrier_minutes, again.carrier_cost) == (
        first.carrier_minutes,
        first.carrier_cost,
    )
    assert (again.cost, again.billed_amount) == (first.cost, first.billed_amount)


def test_a_price_change_applies_to_calls_started_after_it(tenant_a: TenantWorld) -> None:
    change = datetime.datetime(2026, 11, 15, tzinfo=UTC)
    CarrierPrice.objects.create(
        carrier="twilio", direction="inbound", per_minute=Decimal("0.02"), effective_from=change
    )
    # Started a minute before the change and still going after it: the old price.
    across = phone_call(
        tenant_a,
        duration_ms=120_000,
        started_at=change - datetime.timedelta(minutes=1),
        with_tokens=False,
    )
    after = phone_call(
        tenant_a,
        duration_ms=120_000,
        started_at=change + datetime.timedelta(hours=1),
        with_tokens=False,
    )

    assert settle_call(across.pk).carrier_cost == Decimal("0.017000000")  # 2 x 0.0085
    assert settle_call(after.pk).carrier_cost == Decimal("0.040000000")  # 2 x 0.02


def test_a_call_that_is_not_on_the_phone_has_no_carrier_cost(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, provider="openai", model="gpt-realtime")
    call = CallFactory(agent=agent, started_at=DAY)
    with time_machine.travel(DAY, tick=False):
        store(call, "resp_1", MIXED)
    CallSession.objects.filter(pk=call.pk).update(status="ended", duration_ms=61_000)

    settled = settle_call(call.pk)

    assert (settled.carrier, settled.carrier_minutes, settled.carrier_cost) == ("", None, None)
    assert settled.cost == Decimal("0.203380000")
    assert breakdown_of(settled).carrier == 0


def test_a_call_of_no_time_has_no_carrier_minutes(tenant_a: TenantWorld) -> None:
    settled = settle_call(phone_call(tenant_a, duration_ms=0, with_tokens=False).pk)

    assert (settled.carrier_minutes, settled.carrier_cost, settled.cost) == (0, 0, 0)


def test_a_carrier_without_a_price_adds_no_cost_and_the_page_says_so(
    tenant_a: TenantWorld,
) -> None:
    call = phone_call(tenant_a, carrier="telnyx")

    settled = settle_call(call.pk)

    assert (settled.carrier_minutes, settled.carrier_cost) == (2, None)
    assert settled.cost == Decimal("0.203380000")  # the tokens only
    text = (
        tenant_a.client_for("owner")
        .get(reverse("dashboard:call_detail", args=[call.public_id]))
        .content.decode()
    )
    assert "Carrier minutes" in text and "no carrier price" in text


def test_the_call_page_shows_the_carrier_line(tenant_a: TenantWorld) -> None:
    call = settle_call(phone_call(tenant_a).pk)

    response = tenant_a.client_for("editor").get(
        reverse("dashboard:call_detail", args=[call.public_id])
    )

    text = response.content.decode()
    assert "Carrier minutes" in text and "Twilio, inbound, 2 min" in text
    assert "<td>$0.017000</td>" in text
    assert "Provider cost</th><td>$0.220380</td>" in text
    assert response.context["cost_breakdown"].total == call.cost


def test_settled_carrier_cost_counts_towards_the_months_spending(tenant_a: TenantWorld) -> None:
    BillingSettings.objects.create(tenant=tenant_a.tenant, monthly_budget=Decimal(10))
    call = phone_call(tenant_a, duration_ms=600_000, with_tokens=False)  # 10 minutes

    with time_machine.travel(DAY + datetime.timedelta(hours=1), tick=False):
        before = budgets.refresh(tenant_a.tenant.pk).spend
        settle_call(call.pk)
        after = budgets.refresh(tenant_a.tenant.pk).spend

    assert before == 0
    assert after == Decimal("0.085000000")  # 10 x $0.0085, no margin


# --- roll-ups, the usage page and the API --------------------------------------------------


def settled_day(world: TenantWorld) -> CallSession:
    """A settled phone call (2 minutes) and a settled API call of one agent on DAY."""
    call = phone_call(world)
    settle_call(call.pk)
    api_call = CallFactory(agent=call.agent, started_at=DAY + datetime.timedelta(hours=1))
    CallSession.objects.filter(pk=api_call.pk).update(status="ended", duration_ms=30_000)
    settle_call(api_call.pk)
    roll_up_day(world.tenant.pk, DAY.date())
    return call


def test_the_days_roll_up_has_its_carrier_minutes_and_cost(tenant_a: TenantWorld) -> None:
    settled_day(tenant_a)

    row = DailyUsage.objects.get(tenant=tenant_a.tenant, day=DAY.date())

    assert (row.calls, row.carrier_minutes, row.carrier_cost) == (2, 2, Decimal("0.017000000"))
    assert row.cost == Decimal("0.220380000")


def test_the_usage_page_shows_carrier_minutes_per_day_and_agent(tenant_a: TenantWorld) -> None:
    call = settled_day(tenant_a)
    day = DAY.date().isoformat()

    with time_machine.travel(DAY + datetime.timedelta(days=1), tick=False):
        response = tenant_a.client_for("editor").get(
            reverse("dashboard:usage"), {"period": "custom", "start": day, "end": day}
        )

    assert response.status_code == 200
    report = response.context["report"]
    assert report.has_carrier_minutes
    assert (report.days[0].carrier_minutes, report.days[0].carrier_cost) == (
        2,
        Decimal("0.017000000"),
    )
    assert [(agent.agent_name, agent.carrier_minutes) for agent in report.agents] == [
        (call.agent_name, 2)
    ]
    text = response.content.decode()
    assert "Carrier minutes" in text and "<td>$0.017000</td>" in text  # the day's table
    assert "<td>$0.0170</td>" in text  # the agent's table


def test_the_usage_page_has_no_carrier_columns_without_phone_calls(
    tenant_a: TenantWorld,
) -> None:
    response = tenant_a.client_for("owner").get(reverse("dashboard:usage"))

    assert response.status_code == 200
    assert "Carrier minutes" not in response.content.decode()


def test_the_usage_api_and_csv_have_carrier_minutes_per_day_and_agent(
    tenant_a: TenantWorld,
) -> None:
    settled_day(tenant_a)
    period = {"from": DAY.date().isoformat(), "to": DAY.date().isoformat()}

    with time_machine.travel(DAY + datetime.timedelta(days=1), tick=False):
        body = api_client(tenant_a.secret).get("/v1/usage", period).json()
        exported = api_client(tenant_a.secret).get("/v1/usage.csv", period)

    assert (body["totals"]["carrier_minutes"], body["totals"]["carrier_cost"]) == (
        2,
        "0.017000000",
    )
    assert body["days"][0]["carrier_minutes"] == 2
    assert body["days"][0]["carrier_cost"] == "0.017000000"
    assert body["days"][0]["cost"] == "0.220380000"
    assert [(a["carrier_minutes"], a["carrier_cost"]) for a in body["agents"]] == [
        (2, "0.017000000")
    ]
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert (rows[0]["carrier_minutes"], rows[0]["carrier_cost_usd"]) == ("2", "0.017000000")


# --- the phone call as it opens, and the operator's prices ---------------------------------


@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_an_opened_phone_call_carries_its_carrier_and_direction(
    tenant_a: TenantWorld, direction: str
) -> None:
    line = make_line(tenant_a)
    admitted = admit(
        line.number,
        carrier_call_id=f"CA{'1' * 32}",
        remote_number=CALLER,
        direction=direction,
    )

    grant = open_phone_call(admitted.stream_token)

    call = CallSession.objects.get(pk=grant.call_id)
    assert (call.channel, call.carrier, call.carrier_direction) == ("phone", "twilio", direction)


def test_a_carrier_price_in_the_admin_is_history_a_new_row_is_a_change() -> None:
    operator = get_user_model().objects.create_superuser("op@koe.example", "op@koe.example", "pw")
    client = Client()
    client.force_login(operator)
    price = CarrierPrice.objects.get(carrier="twilio", direction="inbound")

    page = client.get(reverse("admin:billing_carrierprice_change", args=[price.pk]))
    added = client.post(
        reverse("admin:billing_carrierprice_add"),
        {
            "carrier": "telnyx",
            "direction": "inbound",
            "per_minute": "0.0055",
            "currency": "USD",
            "effective_from_0": "2026-01-01",
            "effective_from_1": "00:00:00",
            "source": "https://telnyx.com/pricing/call-control",
        },
    )

    assert page.status_code == 200
    assert 'name="per_minute"' not in page.content.decode()  # shown, not editable
    assert added.status_code == 302
    telnyx = carrier_price_in_force("telnyx", "inbound", DAY)
    assert telnyx is not None and telnyx.per_minute == Decimal("0.0055")
