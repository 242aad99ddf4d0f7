"""Which calls a set of filters selects: one form that checks the filters and narrows a
queryset of a tenant's calls.

The dashboard's call list shows it (with selects of the tenant's agents and tools) and the
audit export re-applies it to the query string it saved, so a file holds what the list
showed: ``CallFilter(params, tenant=tenant).filter(for_tenant(CallSession, tenant))``.
Agents and tools are named by app label: the platform core imports neither.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.apps import apps
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db.models import Exists, Model, OuterRef, QuerySet

from calls.models import CallSession, CallStatus, ConsentScope, EndReason
from calls.search import search_calls
from tenancy.models import Tenant
from tenancy.scoping import for_tenant

# Longest call a duration filter takes, in seconds (a day; calls end at the session cap).
MAX_DURATION_SECONDS = 24 * 60 * 60
EARLIEST_DAY = datetime.date(2000, 1, 1)
LATEST_DAY = datetime.date(2999, 12, 31)
HOLD_CHOICES = [("", "Any"), ("on", "On legal hold"), ("off", "Not on hold")]

public_id_validator = RegexValidator(
    r"^[A-Za-z0-9_]{1,40}$", "This is not an id of the dashboard's lists."
)


def with_blank(blank: str, choices: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [("", blank), *choices]


class PublicIdField(forms.CharField):
    """An agent's or tool's public id. Any well-formed id is accepted: one that is not the
    tenant's (deleted, or another tenant's) matches no call, as in a bookmarked link."""

    default_validators = [public_id_validator]


class CallFilter(forms.Form):
    """Filters of the call list. Every field is optional; an unbound form filters nothing.

    ``filter()`` applies the fields that are valid and leaves out those with errors, which
    the list page shows next to them; a caller that must not widen a selection (an export)
    checks ``is_valid()`` first.
    """

    q = forms.CharField(
        label="Transcript contains",
        required=False,
        max_length=200,
        strip=True,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "e.g. refund"}),
        help_text='Words or "a phrase"; -word leaves calls with it out.',
    )
    agent: forms.Field = PublicIdField(label="Agent", required=False)
    date_from = forms.DateField(
        label="From",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[MinValueValidator(EARLIEST_DAY), MaxValueValidator(LATEST_DAY)],
    )
    date_to = forms.DateField(
        label="To",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[MinValueValidator(EARLIEST_DAY), MaxValueValidator(LATEST_DAY)],
    )
    min_duration = forms.IntegerField(
        label="Longer than (s)",
        required=False,
        min_value=0,
        max_value=MAX_DURATION_SECONDS,
    )
    max_duration = forms.IntegerField(
        label="Shorter than (s)",
        required=False,
        min_value=0,
        max_value=MAX_DURATION_SECONDS,
    )
    end_reason = forms.ChoiceField(
        label="End reason", required=False, choices=with_blank("Any end", EndReason.choices)
    )
    consent = forms.ChoiceField(
        label="Consent", required=False, choices=with_blank("Any consent", ConsentScope.choices)
    )
    tool: forms.Field = PublicIdField(label="Tool used", required=False)
    min_cost = forms.DecimalField(
        label="Billed from ($)", required=False, min_value=0, max_digits=12, decimal_places=6
    )
    max_cost = forms.DecimalField(
        label="Billed up to ($)", required=False, min_value=0, max_digits=12, decimal_places=6
    )
    status = forms.ChoiceField(
        label="Status", required=False, choices=with_blank("Any status", CallStatus.choices)
    )
    legal_hold = forms.ChoiceField(label="Legal hold", required=False, choices=HOLD_CHOICES)

    def __init__(
        self, data: Mapping[str, Any] | None = None, *, tenant: Tenant, **kwargs: Any
    ) -> None:
        super().__init__(data, **kwargs)
        self.tenant = tenant

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        for low, high, message in (
            ("date_from", "date_to", "The last day is before the first."),
            ("min_duration", "max_duration", "The longest is shorter than the shortest."),
            ("min_cost", "max_cost", "The upper bound is below the lower one."),
        ):
            low_value, high_value = cleaned.get(low), cleaned.get(high)
            if low_value is not None and high_value is not None and high_value < low_value:
                self.add_error(high, message)
        return cleaned

    @property
    def is_filtered(self) -> bool:
        """Whether the query string asks for any filter, valid or not."""
        return self.is_bound and any(str(self.data.get(name) or "").strip() for name in self.fields)

    @property
    def search_text(self) -> str:
        """The transcript search that applies ("" when none, or when it is invalid)."""
        if not self.is_bound:
            return ""
        self.is_valid()  # cleaned_data keeps only the valid fields
        return str(self.cleaned_data.get("q") or "")

    def filter(self, queryset: QuerySet[CallSession]) -> QuerySet[CallSession]:
        """Narrow ``queryset`` (already scoped to the form's tenant) by the valid filters."""
        if not self.is_bound:
            return queryset
        self.is_valid()
        values = self.cleaned_data
        if values.get("agent"):
            agent_pk = self._pk_of("agents.Agent", values["agent"])
            queryset = queryset.filter(agent_id=agent_pk) if agent_pk else queryset.none()
        if values.get("date_from"):
            queryset = queryset.filter(started_at__gte=self._day_start(values["date_from"]))
        if values.get("date_to"):
            # Through the end of that day, in the tenant's time zone.
            day_after = values["date_to"] + datetime.timedelta(days=1)
            queryset = queryset.filter(started_at__lt=self._day_start(day_after))
        if values.get("min_duration") is not None:
            queryset = queryset.filter(duration_ms__gte=values["min_duration"] * 1000)
        if values.get("max_duration") is not None:
            queryset = queryset.filter(duration_ms__lte=values["max_duration"] * 1000)
        if values.get("end_reason"):
            queryset = queryset.filter(end_reason=values["end_reason"])
        if values.get("consent"):
            queryset = queryset.filter(consent_scope=values["consent"])
        if values.get("tool"):
            # ToolInvocation, not the transcript's tool items: an invocation row is kept
            # for every call whatever its consent (only its content needs consent).
            tool_pk = self._pk_of("tools.ToolDefinition", values["tool"])
            invocations = apps.get_model("tools.ToolInvocation").objects.filter(
                tenant=self.tenant, tool_id=tool_pk, call_id=OuterRef("pk")
            )
            queryset = queryset.filter(Exists(invocations)) if tool_pk else queryset.none()
        if values.get("min_cost") is not None:
            queryset = queryset.filter(billed_amount__gte=values["min_cost"])
        if values.get("max_cost") is not None:
            queryset = queryset.filter(billed_amount__lte=values["max_cost"])
        if values.get("status"):
            queryset = queryset.filter(status=values["status"])
        if values.get("legal_hold"):
            queryset = queryset.filter(legal_hold=values["legal_hold"] == "on")
        if values.get("q"):
            queryset = search_calls(queryset, values["q"])
        return queryset

    def _pk_of(self, label: str, public_id: str) -> int | None:
        # Looked up first (one indexed row), so the calls query filters on a plain column
        # its indexes start with; None (not an object of this tenant) matches no call.
        model: type[Model] = apps.get_model(label)
        objects = for_tenant(model, self.tenant).filter(public_id=public_id)
        return objects.values_list("pk", flat=True).first()

    def _day_start(self, day: datetime.date) -> datetime.datetime:
        """Midnight starting ``day`` in the tenant's time zone (calls are stored in UTC)."""
        try:
            zone = ZoneInfo(self.tenant.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("UTC")
        return datetime.datetime.combine(day, datetime.time.min, tzinfo=zone)
