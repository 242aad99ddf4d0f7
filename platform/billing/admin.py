"""Django admin for the operator: published model and carrier prices, each tenant's margin
and budget."""

from __future__ import annotations

from django.contrib import admin

from billing.models import BillingSettings, CarrierPrice, DailyUsage, ModelPrice


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = [
        "provider",
        "model",
        "effective_from",
        "text_input",
        "text_output",
        "audio_input",
        "audio_output",
    ]
    list_filter = ["provider"]
    search_fields = ["model"]
    ordering = ["provider", "model", "-effective_from"]

    def get_readonly_fields(self, request: object, obj: ModelPrice | None = None) -> list[str]:
        # Responses already priced with a row keep pointing at it: a price change is a
        # new row from a later date, never an edit of the past.
        if obj is not None and obj.pk is not None:
            return [field.name for field in ModelPrice._meta.fields]
        return []


@admin.register(CarrierPrice)
class CarrierPriceAdmin(admin.ModelAdmin):
    list_display = ["carrier", "direction", "effective_from", "per_minute", "currency"]
    list_filter = ["carrier", "direction"]
    ordering = ["carrier", "direction", "-effective_from"]

    def get_readonly_fields(self, request: object, obj: CarrierPrice | None = None) -> list[str]:
        # Settled calls were priced with a row: a price change is a new row from a later
        # date, never an edit of the past.
        if obj is not None and obj.pk is not None:
            return [field.name for field in CarrierPrice._meta.fields]
        return []


@admin.register(BillingSettings)
class BillingSettingsAdmin(admin.ModelAdmin):
    list_display = ["tenant", "margin_percent", "fee_per_minute", "monthly_budget", "budget_mode"]
    search_fields = ["tenant__name"]
    readonly_fields = ["notified_80_month", "notified_100_month"]


@admin.register(DailyUsage)
class DailyUsageAdmin(admin.ModelAdmin):
    list_display = ["day", "tenant", "agent_name", "calls", "carrier_minutes", "cost", "billed"]
    list_filter = ["day"]
    search_fields = ["tenant__name", "agent_name"]
    readonly_fields = [field.name for field in DailyUsage._meta.fields]

    def has_add_permission(self, request: object) -> bool:
        return False
