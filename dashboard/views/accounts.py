"""Accounts: log in and out by e-mail, sign up (unless the operator closed it), home."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from dashboard.forms.tenancy import EmailAuthenticationForm, SignupForm
from tenancy import actions
from tenancy.actions import TenancyError
from tenancy.current import current_membership


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
    """Log in an account we just made or just authenticated (the first backend is ours)."""
    auth.login(request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
