"""Forms of the audit pages: the access log's filters and an export request."""

from __future__ import annotations

import datetime
import re
from typing import Any, cast

from django import forms
from django.db.models import Q, QuerySet

from audit.models import AccessAction, AccessLog, ExportedCall, ExportFormat
from tenancy.models import Tenant

MAX_QUERY_LENGTH = 4000
# A call's public id; only such a value is looked for inside a search row's list of calls.
CALL_ID = re.compile(r"call_[a-z0-9]+")


class AccessLogFilterForm(forms.Form):
    """Filters of the access log; every field is optional and bad values are form errors."""

    actor = forms.ChoiceField(label="Person", required=False)
    action = forms.ChoiceField(
        label="Action", required=False, choices=[("", "Any action"), *AccessAction.choices]
    )
    call = forms.CharField(label="Call id", required=False, max_length=40)
    start = forms.DateField(
        label="From", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    end = forms.DateField(
        label="To", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        # The people in the log, including members who have left since (kept as text).
        actors = (
            AccessLog.objects.filter(tenant=tenant)
            .order_by("actor")
            .values_list("actor", flat=True)
            .distinct()
        )
        actor_field = cast(forms.ChoiceField, self.fields["actor"])
        actor_field.choices = [("", "Anyone"), *((actor, actor) for actor in actors)]

    def clean_call(self) -> str:
        return str(self.cleaned_data["call"]).strip()

    def _about_call(self, call_id: str) -> Q:
        """The rows about one call: those naming it, the exports whose file held it (and
        their downloads), and the transcript searches that showed an extract of it.

        A filtered export's row names no call (it may hold thousands); which calls its file
        held is ``ExportedCall``, written as the file is, so it is asked here instead.
        """
        about = Q(call_public_id=call_id)
        export_ids = list(
            ExportedCall.objects.filter(export__tenant=self.tenant, call__public_id=call_id)
            .values_list("export__public_id", flat=True)
            .distinct()
        )
        if export_ids:
            about |= Q(
                action__in=[AccessAction.EXPORT, AccessAction.DOWNLOAD_EXPORT],
                detail__export__in=export_ids,
            )
        if CALL_ID.fullmatch(call_id):
            # The search row's ``calls`` is a JSON list: match the id with its quotes.
            about |= Q(
                action=AccessAction.SEARCH_TRANSCRIPTS, detail__calls__icontains=f'"{call_id}"'
            )
        return about

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and end < start:
            self.add_error("end", "The last day is before the first.")
        return cleaned

    @property
    def is_filtered(self) -> bool:
        return self.is_valid() and any(self.cleaned_data.values())

    def filter(self, queryset: QuerySet[AccessLog]) -> QuerySet[AccessLog]:
        """The rows matching the valid filters (all rows when the form is not valid)."""
        if not self.is_valid():
            return queryset
        data = self.cleaned_data
        if data["actor"]:
            queryset = queryset.filter(actor=data["actor"])
        if data["action"]:
            queryset = queryset.filter(action=data["action"])
        if data["call"]:
            queryset = queryset.filter(self._about_call(data["call"]))
        # Days are UTC days, as the page shows the times.
        if data["start"]:
            queryset = queryset.filter(created_at__gte=_midnight(data["start"]))
        if data["end"]:
            next_day = data["end"] + datetime.timedelta(days=1)
            queryset = queryset.filter(created_at__lt=_midnight(next_day))
        return queryset


def _midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)


class ExportForm(forms.Form):
    """An export request: one call (``call``) or the call list's query (``query``)."""

    format = forms.ChoiceField(label="Format", choices=ExportFormat.choices)
    call = forms.CharField(required=False, max_length=40, widget=forms.HiddenInput)
    query = forms.CharField(
        required=False, max_length=MAX_QUERY_LENGTH, strip=False, widget=forms.HiddenInput
    )
