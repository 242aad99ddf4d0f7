"""The form of a new batch call: its settings, and the CSV file of the numbers to ring."""

from __future__ import annotations

import re
from typing import Any, cast

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.core.validators import MaxValueValidator, MinValueValidator

from agents.models import Agent
from agents.telephony.batches import (
    MAX_CSV_BYTES,
    MAX_ENTRIES,
    BatchSpec,
    CsvEntries,
    CsvError,
    create_batch,
    parse_csv,
)
from agents.telephony.models import (
    MAX_BATCH_ATTEMPTS,
    MAX_BATCH_CONCURRENCY,
    MAX_RETRY_DELAY_MINUTES,
    CallBatch,
    Carrier,
    PhoneNumber,
)
from dashboard.forms.telephony import AgentChoiceField
from dashboard.forms.tenancy import TimeZoneInput
from foundation.api import InvalidRequest
from tenancy.models import Tenant, validate_time_zone
from tenancy.scoping import for_tenant

# create_batch's names for the fields, and the form's.
FORM_FIELDS = {
    "agent": "agent",
    "from": "phone_number",
    "name": "name",
    "window.start": "window_start",
    "window.end": "window_end",
    "time_zone": "time_zone",
    "concurrency": "concurrency",
    "max_attempts": "max_attempts",
    "retry_delay_minutes": "retry_delay_minutes",
    "entries": "entries_file",
}
ENTRY_FIELD = re.compile(r"^entries\[(\d+)\]\.(\w+)$")


class NumberChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj)


class BatchForm(forms.Form):
    """A batch's settings and its numbers; the CSV's faults are listed by row."""

    name = forms.CharField(max_length=120, help_text="What the calls are for, e.g. “Recalls”.")
    agent = AgentChoiceField(
        queryset=Agent.objects.none(), to_field_name="public_id", help_text="The agent that talks."
    )
    phone_number = NumberChoiceField(
        queryset=PhoneNumber.objects.none(),
        to_field_name="public_id",
        label="Call from",
        help_text="One of your Twilio numbers: the callees see it.",
    )
    window_start = forms.TimeField(
        label="Calls from", initial="09:00", widget=forms.TimeInput(attrs={"type": "time"})
    )
    window_end = forms.TimeField(
        label="Calls until",
        initial="18:00",
        widget=forms.TimeInput(attrs={"type": "time"}),
        help_text="In each callee's own time of day; a window may pass midnight.",
    )
    time_zone = forms.CharField(
        max_length=64,
        validators=[validate_time_zone],
        widget=TimeZoneInput(attrs={"autocomplete": "off"}),
        help_text="The callees' time zone where the file's time_zone column is empty.",
    )
    concurrency = forms.IntegerField(
        label="Calls at once",
        initial=5,
        min_value=1,
        max_value=MAX_BATCH_CONCURRENCY,
        help_text="Within your tenant's concurrent-call limit.",
    )
    max_attempts = forms.IntegerField(
        label="Attempts per number",
        initial=3,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_BATCH_ATTEMPTS)],
        widget=forms.NumberInput(attrs={"min": 1, "max": MAX_BATCH_ATTEMPTS}),
        help_text="A number that does not answer, is busy or fails is called again.",
    )
    retry_delay_minutes = forms.IntegerField(
        label="Minutes between attempts",
        initial=60,
        min_value=1,
        max_value=MAX_RETRY_DELAY_MINUTES,
    )
    entries_file = forms.FileField(
        label="Numbers (CSV)",
        help_text=f"First row: the column names. “to” (E.164, e.g. +14155550123) is required; "
        f"“end_user” (your reference) and “time_zone” (e.g. Europe/Paris) are optional; other "
        f"columns are kept as each call's metadata. At most {MAX_ENTRIES} rows.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.fields["time_zone"].initial = tenant.time_zone
        agent_field = cast(forms.ModelChoiceField, self.fields["agent"])
        agent_field.queryset = for_tenant(Agent, tenant).order_by("name")
        number_field = cast(forms.ModelChoiceField, self.fields["phone_number"])
        number_field.queryset = for_tenant(PhoneNumber, tenant).filter(
            carrier_account__carrier=Carrier.TWILIO
        )

    def clean_entries_file(self) -> CsvEntries:
        upload = cast(UploadedFile, self.cleaned_data["entries_file"])
        if (upload.size or 0) > MAX_CSV_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {MAX_CSV_BYTES // (1024 * 1024)} MB: split it."
            )
        try:
            text = upload.read().decode("utf-8")
        except UnicodeDecodeError as error:
            raise forms.ValidationError(
                "The file is not UTF-8 text: save it as “CSV UTF-8” and upload it again."
            ) from error
        try:
            return parse_csv(text)
        except CsvError as error:
            raise forms.ValidationError(error.messages) from error

    def save(self) -> CallBatch | None:
        """The batch, or None with the refusals added to the form's fields."""
        data = self.cleaned_data
        parsed: CsvEntries = data["entries_file"]
        spec = BatchSpec(
            agent_id=data["agent"].public_id,
            from_number=data["phone_number"].number,
            name=data["name"],
            window_start=data["window_start"],
            window_end=data["window_end"],
            time_zone=data["time_zone"],
            concurrency=data["concurrency"],
            max_attempts=data["max_attempts"],
            retry_delay_minutes=data["retry_delay_minutes"],
            entries=parsed.entries,
        )
        try:
            return create_batch(self.tenant, spec)
        except InvalidRequest as invalid:
            for name, messages in invalid.fields.items():
                self._add_refusal(name, messages, parsed.rows)
            return None

    def _add_refusal(self, name: str, messages: list[str], rows: list[int]) -> None:
        entry = ENTRY_FIELD.match(name)
        if entry is not None:
            index, column = int(entry[1]), entry[2]
            row = rows[index] if index < len(rows) else index + 2
            column = column if column != "metadata" else "other columns"
            for message in messages:
                self.add_error("entries_file", f"Row {row} ({column}): {message}")
            return
        for message in messages:
            self.add_error(FORM_FIELDS.get(name), message)
