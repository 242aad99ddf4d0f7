"""Two-factor at the dashboard's door: what a session may open before it has given a code.

A user with two-factor on who logged in with the password alone (the log-in page, or an
invitation's) sees nothing but the page asking for the code. A member of a tenant that
requires two-factor, without it yet, is sent to set it up before using the tenant's pages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from tenancy import two_factor
from tenancy.current import current_membership

# Pages that do not depend on who is logged in, or that a session owing its code needs.
ALWAYS_OPEN = {
    "login_code",
    "logout",
    "password_reset",
    "password_reset_done",
    "password_reset_confirm",
    "password_reset_complete",
    "demo",
}
# Pages a member may use before setting up the two-factor their tenant requires.
OPEN_BEFORE_SETUP = {
    "account_security",
    "two_factor_setup",
    "password_change",
    "tenant_switch",
    "tenant_create",
    "invitation_accept",
}


class TwoFactorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Any, args: Any, kwargs: Any
    ) -> HttpResponse | None:
        match = request.resolver_match
        # The admin and the API have their own ways in; the dashboard is the namespace here.
        if match is None or match.namespace != "dashboard" or match.url_name in ALWAYS_OPEN:
            return None
        user: Any = request.user
        if not user.is_authenticated or user.is_verified():
            return None
        if two_factor.is_enabled(user):
            query = urlencode({"next": request.get_full_path()})
            return redirect(f"{reverse('dashboard:login_code')}?{query}")
        if match.url_name in OPEN_BEFORE_SETUP:
            return None
        membership = current_membership(request)
        if membership is not None and membership.tenant.requires_two_factor:
            messages.info(
                request,
                f"{membership.tenant.name} requires two-factor log-in: set it up to go on.",
            )
            return redirect("dashboard:two_factor_setup")
        return None
