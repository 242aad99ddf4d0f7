"""Forms of the tenancy pages: accounts, tenants, members, keys, provider credentials."""

from __future__ import annotations

from functools import cache
from typing import Any, cast
from zoneinfo import available_timezones

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.http import HttpRequest

from dashboard.forms.base import TenantModelForm
from tenancy.actions import email_taken, find_user, normalize_email
from tenancy.models import Provider, ProviderCredential, Tenant
from tenancy.roles import Role

# --- accounts ------------------------------------------------------------------------------


class EmailAuthenticationForm(AuthenticationForm):
    """Django's log-in form, asking for the e-mail (which is the username) in any case."""

    username = forms.CharField(
        label="E-mail",
        max_length=254,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "This e-mail and password do not match an account. "
        "The password is case-sensitive.",
    }

    def clean_username(self) -> str:
        email = self.cleaned_data["username"].strip()
        user = find_user(email)
        return user.get_username() if user is not None else email


class PasswordPairForm(forms.Form):
    """A new password typed twice, checked by the configured password validators."""

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

    def __init__(self, *args: Any, email: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.account_email = email

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", "The two passwords differ.")
        elif first:
            email = cleaned.get("email", self.account_email)
            # An unsaved user lets the similarity validator compare with the e-mail.
            candidate = get_user_model()(username=email, email=email)
            try:
                password_validation.validate_password(first, user=candidate)
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return cleaned


class SignupForm(PasswordPairForm):
    field_order = ["email", "password1", "password2"]
    email = forms.EmailField(
        label="E-mail", widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )

    def clean_email(self) -> str:
        email = normalize_email(self.cleaned_data["email"])
        if email_taken(email):
            raise forms.ValidationError("An account with this e-mail exists: log in instead.")
        return email


class EmailPasswordResetForm(PasswordResetForm):
    """Django's reset form (it answers alike whether or not the address has an account)."""

    email = forms.EmailField(
        label="E-mail",
        max_length=254,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )


class CodeForm(forms.Form):
    """A code from the authenticator app, or one of the backup codes."""

    code = forms.CharField(
        label="Code",
        max_length=32,
        help_text="The six digits your authenticator app shows now, or one of your backup codes.",
        widget=forms.TextInput(
            attrs={"autofocus": True, "autocomplete": "one-time-code", "spellcheck": "false"}
        ),
    )


class PasswordCheckForm(forms.Form):
    """The account's current password, asked again before a change that weakens the log-in."""

    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("This is not your password.")
        return password


class InvitationLoginForm(EmailAuthenticationForm):
    """Log in as the invited e-mail only: the address comes from the invitation, not the POST."""

    def __init__(self, request: HttpRequest, email: str, data: Any = None) -> None:
        if data is not None:
            data = {"username": email, "password": data.get("password", "")}
        super().__init__(request, data=data, initial={"username": email})
        self.fields["username"].widget = forms.HiddenInput()
        self.fields["password"].widget.attrs["autofocus"] = True


# --- tenants -------------------------------------------------------------------------------


@cache
def _sorted_time_zones() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


class TimeZoneInput(forms.TextInput):
    """A text input suggesting the IANA time zones (a datalist), still free to type."""

    template_name = "dashboard/tenants/time_zone_input.html"

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        widget = context["widget"]
        widget["attrs"]["list"] = f"{widget['attrs'].get('id') or name}-choices"
        widget["time_zones"] = _sorted_time_zones()
        return context


class TenantForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = ["name", "time_zone"]
        labels = {"name": "Organisation name"}
        help_texts = {"time_zone": "IANA name, e.g. Europe/London; used by time-aware tools."}
        widgets = {"time_zone": TimeZoneInput(attrs={"autocomplete": "off"})}


class TenantSettingsForm(TenantForm):
    """The tenant's settings; only an owner may change whether two-factor is required."""

    class Meta(TenantForm.Meta):
        fields = [
            "name",
            "time_zone",
            "max_concurrent_calls",
            "auditors_may_hold",
            "requires_two_factor",
        ]
        labels = {
            **TenantForm.Meta.labels,
            "auditors_may_hold": "Auditors may set legal hold",
            "requires_two_factor": "Require two-factor log-in of every member",
        }

    def __init__(self, *args: Any, is_owner: bool, has_two_factor: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.has_two_factor = has_two_factor
        if not is_owner:
            field = self.fields["requires_two_factor"]
            field.disabled = True
            field.help_text = "Only an owner can change this."

    def clean_requires_two_factor(self) -> bool:
        is_required = bool(self.cleaned_data["requires_two_factor"])
        if is_required and not self.instance.requires_two_factor and not self.has_two_factor:
            raise forms.ValidationError(
                "Turn on two-factor log-in for your own account first (your e-mail at the "
                "top right, then Set up two-factor), then require it of everyone."
            )
        return is_required


# --- members -------------------------------------------------------------------------------


class InviteForm(forms.Form):
    email = forms.EmailField(label="E-mail", widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    role = forms.ChoiceField(initial=Role.EDITOR)

    def __init__(self, *args: Any, roles: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only the roles the inviter may grant are offered (admins cannot make owners).
        role_field = cast(forms.ChoiceField, self.fields["role"])
        role_field.choices = [(role, Role(role).label) for role in roles]


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


# --- API keys ------------------------------------------------------------------------------


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=80, help_text="Say where it is used, e.g. “booking backend”.")


# --- provider credentials ------------------------------------------------------------------


class CredentialForm(TenantModelForm):
    """A provider key: the key field never renders a value, and empty on edit keeps the key."""

    api_key = forms.CharField(
        label="API key",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )
    azure_endpoint = forms.URLField(
        label="Azure endpoint",
        required=False,
        assume_scheme="https",
        help_text="Azure only: https://<resource>.openai.azure.com",
    )

    class Meta:
        model = ProviderCredential
        fields = ["name", "provider", "api_key", "azure_endpoint"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stored_key = self.instance.api_key if self.instance.pk else ""
        if self.stored_key:
            self.fields["api_key"].help_text = (
                f"A key ending in …{self.instance.key_hint} is stored. "
                "Leave this empty to keep it, or paste a new key to replace it."
            )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
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
        provider = cleaned.get("provider")
        endpoint = cleaned.get("azure_endpoint") or ""
        if provider == Provider.AZURE:
            if not endpoint and "azure_endpoint" not in self.errors:
                self.add_error("azure_endpoint", "Azure needs the resource's endpoint.")
            elif endpoint and not endpoint.startswith("https://"):
                self.add_error("azure_endpoint", "Use the https:// endpoint of the resource.")
        elif provider:
            # An endpoint means nothing for OpenAI: don't keep a stale one around.
            cleaned["azure_endpoint"] = ""
        return cleaned
