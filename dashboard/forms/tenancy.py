"""Forms of the tenancy pages: accounts, tenants, members, keys, provider credentials."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm

from dashboard.forms.base import TenantModelForm
from tenancy.actions import email_taken
from tenancy.models import ProviderCredential, Tenant
from tenancy.roles import Role


class EmailAuthenticationForm(AuthenticationForm):
    username = forms.EmailField(
        label="E-mail", widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"})
    )


class PasswordPairForm(forms.Form):
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", "The two passwords differ.")
        elif first:
            try:
                password_validation.validate_password(first)
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return cleaned


class SignupForm(PasswordPairForm):
    field_order = ["email", "password1", "password2"]
    email = forms.EmailField(
        label="E-mail", widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if email_taken(email):
            raise forms.ValidationError("An account with this e-mail exists: log in instead.")
        return email


class TenantForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = ["name", "time_zone"]
        help_texts = {"time_zone": "IANA name, e.g. Europe/London; used by time-aware tools."}


class TenantSettingsForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = ["name", "time_zone", "max_concurrent_calls"]


class InviteForm(forms.Form):
    email = forms.EmailField(label="E-mail")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.EDITOR)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=80, help_text="Say where it is used, e.g. “booking backend”.")


class CredentialForm(TenantModelForm):
    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )

    class Meta:
        model = ProviderCredential
        fields = ["name", "provider", "api_key", "azure_endpoint"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stored_key = self.instance.api_key if self.instance.pk else ""
        if self.instance.pk:
            self.fields[
                "api_key"
            ].help_text = (
                f"Stored (…{self.instance.key_hint}); leave empty to keep it, or paste a new key."
            )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        duplicates = ProviderCredential.objects.filter(tenant=self.tenant, name=name)
        if duplicates.exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("A provider key with this name exists.")
        return name

    def clean_api_key(self) -> str:
        value = self.cleaned_data["api_key"]
        if not value and not self.stored_key:
            raise forms.ValidationError("Paste the provider's API key.")
        return value or self.stored_key

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("provider") == "azure":
            endpoint = cleaned.get("azure_endpoint") or ""
            if not endpoint:
                self.add_error("azure_endpoint", "Azure needs the resource's endpoint.")
            elif not endpoint.startswith("https://"):
                self.add_error("azure_endpoint", "Use the https:// endpoint of the resource.")
        return cleaned
