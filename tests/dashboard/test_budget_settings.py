"""Owners and admins set the tenant's monthly budget; the operator's prices are history."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from billing import budgets
from billing.models import BillingSettings, ModelPrice
from tests.conftest import TenantWorld

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_cache(settings: Any) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "b"}
    }


def test_an_owner_sets_a_hard_budget_and_the_call_path_sees_it_at_once(
    tenant_a: TenantWorld,
) -> None:
    client = tenant_a.client_for("owner")
    budgets.budget_of(tenant_a.tenant.pk)  # cached before the change

    response = client.post(
        reverse("dashboard:tenant_budget"),
        {"monthly_budget": "250.00", "budget_mode": "hard", "overrun_percent": "5"},
    )

    assert response.status_code == 302
    saved = BillingSettings.objects.get(tenant=tenant_a.tenant)
    assert (saved.monthly_budget, saved.budget_mode, saved.overrun_percent) == (
        Decimal("250.00"),
        "hard",
        Decimal("5.00"),
    )
    budget = budgets.budget_of(tenant_a.tenant.pk)
    assert (budget.monthly_budget, budget.mode) == (Decimal("250.00"), "hard")
    page = client.get(reverse("dashboard:tenant_settings")).content.decode()
    assert 'value="250.00"' in page


def test_a_bad_budget_gets_field_errors_and_changes_nothing(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for("admin")

    response = client.post(
        reverse("dashboard:tenant_budget"),
        {"monthly_budget": "-3", "budget_mode": "hard", "overrun_percent": "500"},
    )

    assert response.status_code == 200
    errors = response.context["budget_form"].errors
    assert set(errors) == {"monthly_budget", "overrun_percent"}
    assert not BillingSettings.objects.filter(monthly_budget__isnull=False).exists()


@pytest.mark.parametrize("role", ["editor", "auditor"])
def test_only_owners_and_admins_set_the_budget(tenant_a: TenantWorld, role: str) -> None:
    response = tenant_a.client_for(role).post(
        reverse("dashboard:tenant_budget"), {"monthly_budget": "1", "budget_mode": "hard"}
    )

    assert response.status_code == 403
    assert not BillingSettings.objects.exists()


def test_a_price_in_the_admin_is_history_a_new_row_is_a_change() -> None:
    operator = get_user_model().objects.create_superuser("op@koe.example", "op@koe.example", "pw")
    client = Client()
    client.force_login(operator)
    price = ModelPrice.objects.get(provider="openai", model="gpt-realtime")

    page = client.get(reverse("admin:billing_modelprice_change", args=[price.pk]))
    added = client.post(
        reverse("admin:billing_modelprice_add"),
        {
            "provider": "openai",
            "model": "gpt-realtime",
            "effective_from_0": "2027-01-01",
            "effective_from_1": "00:00:00",
            "currency": "USD",
            **{
                field: "1"
                for field in (
                    "text_input",
                    "cached_text_input",
                    "text_output",
                    "audio_input",
                    "cached_audio_input",
                    "audio_output",
                    "image_input",
                    "cached_image_input",
                )
            },
        },
    )

    assert page.status_code == 200
    assert 'name="audio_output"' not in page.content.decode()  # shown, not editable
    assert added.status_code == 302
    rows = ModelPrice.objects.filter(provider="openai", model="gpt-realtime")
    assert rows.count() == 2
    assert rows.get(effective_from__year=2027).audio_output == Decimal(1)
    assert price.effective_from < datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)
