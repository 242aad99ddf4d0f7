"""The usage page's period picker: a named period ending today, or custom dates."""

from __future__ import annotations

import datetime
from typing import Any

from django import forms
from django.http import QueryDict

from billing.reports import PRESETS, PeriodError, check_period, parse_day, preset_period

CUSTOM = "custom"
DEFAULT_PERIOD = "30"
CHARTS = {"cost": "Cost per day", "calls": "Calls per day"}


class UsagePeriodForm(forms.Form):
    period = forms.ChoiceField(label="Period", choices=[*PRESETS.items(), (CUSTOM, "Custom dates")])
    # Text fields parsed in clean(): the dates count only for custom periods, so a stale
    # value left in them does not spoil a named period.
    start = forms.CharField(
        label="From",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Custom period: the first day (UTC).",
    )
    end = forms.CharField(
        label="To",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Custom period: the last day, at most 366 days after the first.",
    )
    chart = forms.ChoiceField(label="Chart", choices=list(CHARTS.items()), required=False)

    def __init__(self, data: QueryDict, today: datetime.date, **kwargs: Any) -> None:
        values = data.copy()
        if not values.get("period"):
            values["period"] = DEFAULT_PERIOD
        super().__init__(values, **kwargs)
        self.today = today

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        cleaned["chart"] = cleaned.get("chart") or "cost"
        period = cleaned.get("period")
        if not period:
            return cleaned
        if period != CUSTOM:
            cleaned["dates"] = preset_period(period, self.today)
            return cleaned
        dates = [self._date(name, cleaned.get(name, "")) for name in ("start", "end")]
        start, end = dates
        if start is not None and end is not None:
            try:
                check_period(start, end)
            except PeriodError as error:
                self.add_error(error.field, error.message)
            else:
                cleaned["dates"] = (start, end)
        return cleaned

    def _date(self, name: str, raw: str) -> datetime.date | None:
        if not raw.strip():
            self.add_error(name, "Enter a date for a custom period.")
            return None
        try:
            return parse_day(raw, name)
        except PeriodError as error:
            self.add_error(name, error.message)
            return None
