"""Forms of the telephony pages: a tenant's carrier accounts and its phone numbers."""

from __future__ import annotations

import re
from typing import Any, cast

from django import forms

from agents.models import Agent
from agents.telephony.api import VOICE_WEBHOOKS
from agents.telephony.models import (
    Carrier,
    CarrierAccount,
    PhoneConsent,
    PhoneNumber,
)
from dashboard.forms.base import TenantModelForm
from foundation.phone_numbers import validate_e164
from tenancy.scoping import for_tenant

TWILIO_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
# Carriers' consoles show numbers grouped ("+1 415-555-0123"); spaces and hyphens are
# only grouping, so they go. Anything else (brackets, a trunk "(0)") is left for the
# E.164 check to refuse, since dropping it could silently make another number.
NUMBER_GROUPING = re.compile(r"[\s\-]")


class CarrierAccountForm(TenantModelForm):
    """A carrier account: the auth token never renders a value, and empty on edit keeps it."""

    auth_token = forms.CharField(
        label="Auth token or API key",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Twilio: the account's auth token, next to the account SID in the console. "
        "Telnyx: an API key (Keys & Credentials, API Keys).",
    )

    class Meta:
        model = CarrierAccount
        fields = [
            "name",
            "carrier",
            "account_sid",
            "auth_token",
            "webhook_public_key",
            "connection_id",
        ]
        labels = {
            "account_sid": "Account SID (Twilio)",
            "webhook_public_key": "Public key (Telnyx)",
            "connection_id": "Call Control application ID (Telnyx)",
        }
        help_texts = {
            "webhook_public_key": "Telnyx: the public key under Keys & Credentials, Public Key; "
            "Koe checks each webhook's signature with it.",
            "connection_id": "Telnyx: optional, the id of the Call Control application whose "
            "webhook URL is Koe's.",
        }
        widgets = {
            "account_sid": forms.TextInput(attrs={"autocomplete": "off"}),
            "webhook_public_key": forms.TextInput(attrs={"autocomplete": "off"}),
            "connection_id": forms.TextInput(attrs={"autocomplete": "off"}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stored_token = self.instance.auth_token if self.instance.pk else ""
        carrier_field = cast(forms.ChoiceField, self.fields["carrier"])
        if self.instance.pk:
            # As in the API, an account stays at its carrier: its numbers are routed by it.
            carrier_field.disabled = True
            carrier_field.help_text = "Fixed once added: for another carrier, add an account."
        else:
            # Offer only the carriers whose calls Koe answers (those with a voice webhook).
            carrier_field.choices = [
                (value, label) for value, label in Carrier.choices if value in VOICE_WEBHOOKS
            ]
        if self.stored_token:
            self.fields["auth_token"].help_text = (
                f"A token ending in …{self.instance.token_hint} is stored. "
                "Leave this empty to keep it, or paste a new token (after rotating it at the "
                "carrier) to replace it."
            )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        duplicates = CarrierAccount.objects.filter(tenant=self.tenant, name=name)
        if duplicates.exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("A carrier account with this name exists.")
        return name

    def clean_auth_token(self) -> str:
        value = self.cleaned_data["auth_token"]
        if not value and not self.stored_token:
            raise forms.ValidationError("Paste the account's auth token.")
        return value or self.stored_token

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        sid = cleaned.get("account_sid") or ""
        # A pasted auth token in the SID field is the usual slip: say so before saving.
        if sid and cleaned.get("carrier") == Carrier.TWILIO and not TWILIO_ACCOUNT_SID.match(sid):
            self.add_error(
                "account_sid",
                "A Twilio account SID is “AC” followed by 32 letters and digits, "
                "as the console shows it.",
            )
        return cleaned


class AgentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.name)


class CarrierAccountChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} ({obj.get_carrier_display()})"


class PhoneNumberForm(TenantModelForm):
    """A number and the agent that answers it; only the tenant's own agents and accounts
    are offered, and a foreign id posted is "not one of the choices" (a field error)."""

    # Longer than E.164 allows: grouped as a console shows it, a number may be; the E.164
    # check after the grouping is dropped says what is wrong better than a length would.
    number = forms.CharField(
        label="Phone number",
        max_length=32,
        help_text="E.164: a plus sign, the country code and the number, e.g. +14155550123.",
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "inputmode": "tel", "spellcheck": "false"}
        ),
    )
    # Public ids, not database ids, travel in the form: ids shown to users are opaque.
    carrier_account = CarrierAccountChoiceField(
        queryset=CarrierAccount.objects.none(),
        to_field_name="public_id",
        label="Carrier account",
        help_text="The account at the carrier that holds this number.",
    )
    agent = AgentChoiceField(
        queryset=Agent.objects.none(),
        to_field_name="public_id",
        required=False,
        empty_label="No agent: callers hear that the line is closed",
        help_text="The agent that answers calls to this number.",
    )

    class Meta:
        model = PhoneNumber
        fields = ["number", "label", "carrier_account", "agent", "consent"]
        help_texts = {
            "label": "Optional: what the number is for, e.g. “Front desk”.",
            "consent": "Your legal basis for the calls: with “Disclosed”, the agent's consent "
            "text is spoken before the greeting and the call keeps its transcript.",
        }
        widgets = {"consent": forms.RadioSelect}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        account_field = cast(forms.ModelChoiceField, self.fields["carrier_account"])
        account_field.queryset = for_tenant(CarrierAccount, self.tenant).order_by("name")
        agent_field = cast(forms.ModelChoiceField, self.fields["agent"])
        agent_field.queryset = for_tenant(Agent, self.tenant).order_by("name")
        # model_to_dict gives database ids; the fields speak public ids.
        if self.instance.carrier_account_id:
            self.initial["carrier_account"] = self.instance.carrier_account.public_id
        if self.instance.agent_id and self.instance.agent is not None:
            self.initial["agent"] = self.instance.agent.public_id
        if self.instance.pk:
            # As in the API, a number is not renamed: another number is another line.
            number_field = self.fields["number"]
            number_field.disabled = True
            number_field.help_text = "To use another number, add it and delete this one."

    def clean_number(self) -> str:
        number = NUMBER_GROUPING.sub("", self.cleaned_data["number"])
        validate_e164(number)
        taken = PhoneNumber.objects.filter(number=number).exclude(pk=self.instance.pk)
        own = taken.filter(tenant=self.tenant).exists()
        if own:
            raise forms.ValidationError(
                "%(number)s is already one of your phone numbers: edit it instead.",
                params={"number": number},
            )
        if taken.exists():
            # Numbers are unique across Koe (a carrier's call must reach one tenant); which
            # tenant holds it is not this tenant's business.
            raise forms.ValidationError(
                "%(number)s is already connected to Koe by another organisation. If the "
                "number is yours, contact support.",
                params={"number": number},
            )
        return number

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        agent = cleaned.get("agent")
        if (
            agent is not None
            and agent.consent_required
            and cleaned.get("consent") == (PhoneConsent.NONE)
        ):
            # Such calls are refused at the door (the agent needs consent the line never
            # asks for): say so now rather than leave a number that only says goodbye.
            self.add_error(
                "consent",
                forms.ValidationError(
                    "“%(agent)s” requires consent: choose “Disclosed”, or callers hear "
                    "that the line is closed.",
                    params={"agent": agent.name},
                ),
            )
        return cleaned
