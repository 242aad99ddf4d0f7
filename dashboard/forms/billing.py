"""The tenant's monthly budget (on the settings page); margins are the operator's."""

from __future__ import annotations

from django import forms

from billing.models import BillingSettings


class BudgetForm(forms.ModelForm):
    class Meta:
        model = BillingSettings
        fields = ["monthly_budget", "budget_mode", "overrun_percent"]
        labels = {"monthly_budget": "Monthly budget (USD)", "overrun_percent": "Overrun (%)"}
