"""Forms of a tenant's retention policy and of an agent's override of it."""

from __future__ import annotations

from django import forms

from retention.models import MAX_RETENTION_DAYS, RetentionPolicy

DAYS_WIDGET = forms.NumberInput(attrs={"min": 0, "max": MAX_RETENTION_DAYS, "step": 1})


class TenantRetentionForm(forms.ModelForm):
    class Meta:
        model = RetentionPolicy
        fields = ["recording_days", "transcript_days", "event_log_days"]
        labels = {
            "recording_days": "Keep recordings (days)",
            "transcript_days": "Keep transcripts (days)",
            "event_log_days": "Keep sent events (days)",
        }
        help_texts = {
            "recording_days": "Counted from the end of the call. Empty: keep forever; "
            "0: delete at the first purge after the call ends.",
            "transcript_days": "Transcripts, and tool call arguments and results (the tool "
            "calls themselves stay, for statistics). Empty: keep forever; 0: do not keep.",
            "event_log_days": "Events sent to your backend, with their payloads and delivery "
            "records. Empty: keep forever.",
        }
        widgets = {field: DAYS_WIDGET for field in fields}


class AgentRetentionForm(forms.ModelForm):
    """An agent's override; a field left empty takes the tenant's value."""

    class Meta:
        model = RetentionPolicy
        fields = ["recording_days", "transcript_days"]
        labels = {
            "recording_days": "Keep this agent's recordings (days)",
            "transcript_days": "Keep this agent's transcripts (days)",
        }
        help_texts = {
            "recording_days": "Empty: as the tenant. 0: delete at the first purge after "
            "the call ends.",
            "transcript_days": "Empty: as the tenant. 0: do not keep.",
        }
        widgets = {field: DAYS_WIDGET for field in fields}

    @property
    def overrides_anything(self) -> bool:
        return any(self.cleaned_data.get(field) is not None for field in self.Meta.fields)
