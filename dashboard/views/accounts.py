"""Accounts: log in and out by e-mail, sign up (unless the operator closed it), home."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from dashboard.forms.tenancy import EmailAuthenticationForm, SignupForm
from tenancy.actions import create_user
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
    pass


def signup(request: HttpRequest) -> HttpResponse:
    if not settings.KOE_PUBLIC_SIGNUP:
        raise Http404("Sign-up is closed on this deployment; ask for an invitation.")
    form = SignupForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        user = create_user(form.cleaned_data["email"], form.cleaned_data["password1"])
        auth.login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("dashboard:tenant_create")
    return render(request, "dashboard/accounts/signup.html", {"form": form})
