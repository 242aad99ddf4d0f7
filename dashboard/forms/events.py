"""The form of a tenant's events endpoint (on the settings page)."""

from __future__ import annotations

from django import forms

from koe.outbound import OutboundBlocked, check_url


class EventEndpointForm(forms.Form):
    events_url = forms.URLField(
        label="Events URL",
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="Koe POSTs signed events here (a call ended, a caller asked for a person). "
        "Leave it empty to turn events off.",
    )

    def clean_events_url(self) -> str:
        url: str = self.cleaned_data["events_url"].strip()
        if url:
            try:
                check_url(url)
            except OutboundBlocked as error:
                raise forms.ValidationError(str(error), code="blocked") from error
        return url
