"""Accounts: log in (with lockout and two-factor), out, sign up, reset and change passwords.

Failed log-ins are counted by django-axes (koe/settings.py): a locked-out account or address
gets ``locked_out``'s page. Two-factor is django-otp's: once an account has an authenticator
app, a session that logged in with the password sees only ``login_code`` until it gives a
code (dashboard/middleware.py).
"""

from __future__ import annotations

from typing import Any

import segno
from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST, require_safe
from django_otp import login as otp_login

from dashboard.forms.tenancy import (
    CodeForm,
    EmailAuthenticationForm,
    EmailPasswordResetForm,
    PasswordCheckForm,
    SignupForm,
)
from tenancy import actions, logins, two_factor
from tenancy.actions import TenancyError
from tenancy.current import current_membership
from tenancy.two_factor import TwoFactorError

# The backend that keeps a session's user; the first one (axes) only refuses log-ins.
SESSION_BACKEND = "django.contrib.auth.backends.ModelBackend"


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("dashboard:login")
    if current_membership(request) is None:
        return redirect("dashboard:tenant_create")
    return redirect("dashboard:agent_list")


class LoginView(auth_views.LoginView):
    template_name = "dashboard/accounts/login.html"
    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "signup_open": settings.KOE_PUBLIC_SIGNUP}


def locked_out(
    request: HttpRequest, response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """The answer to a log-in while its account or address is locked out (axes calls it)."""
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    page = render(
        request,
        "dashboard/accounts/locked_out.html",
        {"minutes": max(1, seconds // 60), "failure_limit": settings.AXES_FAILURE_LIMIT},
        status=429,
    )
    page["Retry-After"] = str(seconds)
    return page


@login_required
def login_code(request: HttpRequest) -> HttpResponse:
    """The second step of a log-in with two-factor: a code from the app or a backup code."""
    user: Any = request.user
    next_url = _next_url(request)
    if user.is_verified() or not two_factor.is_enabled(user):
        return redirect(next_url)
    form = CodeForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            device = two_factor.verify_code(user, form.cleaned_data["code"])
        except TwoFactorError as error:
            form.add_error("code", str(error))
        else:
            otp_login(request, device)
            return redirect(next_url)
    return render(request, "dashboard/accounts/login_code.html", {"form": form, "next": next_url})


class LogoutView(auth_views.LogoutView):
    """POST only (Django's rule): a link could log people out from another site."""


def signup(request: HttpRequest) -> HttpResponse:
    if not settings.KOE_PUBLIC_SIGNUP:
        raise Http404("Sign-up is closed on this deployment; ask for an invitation.")
    if request.user.is_authenticated:
        return redirect("dashboard:home")
    form = SignupForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            user = actions.create_user(form.cleaned_data["email"], form.cleaned_data["password1"])
        except TenancyError as error:
            form.add_error(error.field, str(error))
        else:
            log_in(request, user)
            messages.success(request, "Welcome to Koe. Name your organisation to get started.")
            return redirect("dashboard:tenant_create")
    return render(request, "dashboard/accounts/signup.html", {"form": form})


def log_in(request: HttpRequest, user: Any) -> None:
    """Log in an account we just made or just authenticated."""
    auth.login(request, user, backend=SESSION_BACKEND)


# --- forgotten and changed passwords ------------------------------------------------------


class PasswordResetView(auth_views.PasswordResetView):
    """Mails a reset link to an account's address; the page is the same for any address."""

    form_class = EmailPasswordResetForm
    template_name = "dashboard/accounts/password_reset.html"
    email_template_name = "dashboard/accounts/password_reset_email.txt"
    subject_template_name = "dashboard/accounts/password_reset_subject.txt"
    success_url = reverse_lazy("dashboard:password_reset_done")

    def form_valid(self, form: Any) -> HttpResponse:
        # Links point at the configured site, never at the Host header of the request.
        self.extra_email_context = {
            "site_url": settings.KOE_SITE_URL,
            "valid_minutes": settings.PASSWORD_RESET_TIMEOUT // 60,
        }
        return super().form_valid(form)


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "dashboard/accounts/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """The link's page: a new password, once (a new password voids the link's token)."""

    template_name = "dashboard/accounts/password_reset_confirm.html"
    success_url = reverse_lazy("dashboard:password_reset_complete")

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        # Whoever holds the mailbox may log in again at once, whatever failed before.
        logins.lift_account_lockout(form.user.get_username())
        return response


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "dashboard/accounts/password_reset_complete.html"


class PasswordChangeView(auth_views.PasswordChangeView):
    """Change the password; other sessions of the account are logged out by Django."""

    template_name = "dashboard/accounts/password_change.html"
    success_url = reverse_lazy("dashboard:account_security")

    def form_valid(self, form: Any) -> HttpResponse:
        messages.success(self.request, "Your password is changed.")
        return super().form_valid(form)


# --- two-factor ---------------------------------------------------------------------------


@require_safe
@login_required
def account_security(request: HttpRequest) -> HttpResponse:
    return _security_page(request, PasswordCheckForm(user=request.user))


@login_required
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    """Show the app's secret (a QR code and the text), then confirm it with a code."""
    user: Any = request.user
    if two_factor.is_enabled(user):
        messages.info(request, "Two-factor log-in is already on.")
        return redirect("dashboard:account_security")
    device = two_factor.app_to_confirm(user)
    form = CodeForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            codes = two_factor.confirm_app(device, form.cleaned_data["code"])
        except TwoFactorError as error:
            form.add_error("code", str(error))
        else:
            otp_login(request, device)
            messages.success(request, "Two-factor log-in is on.")
            return _backup_codes_page(request, codes)
    url = device.config_url
    # segno draws the QR code of our own otpauth URL: nothing of the page's input is in it.
    qr_svg = mark_safe(  # noqa: S308
        segno.make(url, error="m").svg_inline(scale=5, title="QR code of the secret")
    )
    return render(
        request,
        "dashboard/accounts/two_factor_setup.html",
        {
            "form": form,
            "otpauth_url": url,
            "secret": two_factor.secret_text(device),
            "qr_svg": qr_svg,
        },
    )


@require_POST
@login_required
def two_factor_turn_off(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    form = PasswordCheckForm(request.POST, user=user)
    if not form.is_valid():
        return _security_page(request, form)
    try:
        two_factor.turn_off(user)
    except TwoFactorError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, "Two-factor log-in is off.")
    return redirect("dashboard:account_security")


@require_POST
@login_required
def backup_codes_renew(request: HttpRequest) -> HttpResponse:
    if not two_factor.is_enabled(request.user):
        return redirect("dashboard:account_security")
    messages.success(request, "New backup codes: the old ones no longer work.")
    return _backup_codes_page(request, two_factor.new_backup_codes(request.user))


def _security_page(request: HttpRequest, turn_off_form: PasswordCheckForm) -> HttpResponse:
    user: Any = request.user
    return render(
        request,
        "dashboard/accounts/security.html",
        {
            "has_two_factor": two_factor.is_enabled(user),
            "backup_codes_left": two_factor.backup_codes_left(user),
            "required_by": two_factor.tenants_requiring(user),
            "turn_off_form": turn_off_form,
        },
    )


def _backup_codes_page(request: HttpRequest, codes: list[str]) -> HttpResponse:
    """Backup codes are shown once, in the answer to the POST that made them."""
    return render(request, "dashboard/accounts/backup_codes.html", {"codes": codes})


def _next_url(request: HttpRequest) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    is_safe = url_has_allowed_host_and_scheme(
        wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return wanted if is_safe else resolve_url(settings.LOGIN_REDIRECT_URL)
