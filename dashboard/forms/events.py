"""The form of a tenant's events endpoint (on the settings page)."""

from __future__ import annotations

from django import forms

from foundation.outbound import validate_url_for_saving


class EventEndpointForm(forms.Form):
    events_url = forms.URLField(
        label="Events URL",
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="Koe POSTs signed events here (a call ended, a caller asked for a person). "
        "Leave it empty to turn events off.",
        validators=[validate_url_for_saving],
    )
