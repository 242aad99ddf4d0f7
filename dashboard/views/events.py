"""Dashboard pages for outbound events: the endpoint's URL and secret, a test, the event log."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from dashboard.access import require, tenant_view
from dashboard.forms.events import EventEndpointForm
from dashboard.pagination import list_page
from dashboard.views.tenants import render_settings
from events.actions import rotate_signing_secret, send_test_event, set_events_url
from events.delivery import event_body
from events.models import EventEndpoint, OutboundEvent
from tenancy.models import Membership
from tenancy.roles import Permission
from tenancy.scoping import for_tenant, get_for_tenant_or_404

EVENTS_PER_PAGE = 50


@require_POST
@tenant_view(Permission.MANAGE)
def events_endpoint(request: HttpRequest, membership: Membership) -> HttpResponse:
    """Set or clear the events URL; the first time, show the new signing secret once."""
    form = EventEndpointForm(request.POST)
    if not form.is_valid():
        return render_settings(request, membership, events_form=form)
    endpoint, secret = set_events_url(membership.tenant, form.cleaned_data["events_url"])
    if endpoint is not None and secret:
        return _show_secret_once(request, endpoint, secret, "created")
    if endpoint is not None and endpoint.is_active:
        messages.success(request, f"Events now go to {endpoint.url}.")
    else:
        messages.info(request, "Events are off: Koe sends none until you set a URL.")
    return redirect("dashboard:tenant_settings")


@require_POST
@tenant_view(Permission.MANAGE)
def events_rotate_secret(request: HttpRequest, membership: Membership) -> HttpResponse:
    endpoint = for_tenant(EventEndpoint, membership.tenant).first()
    if endpoint is None:
        messages.error(request, "Set an events URL first: its signing secret is made then.")
        return redirect("dashboard:tenant_settings")
    secret = rotate_signing_secret(endpoint)
    return _show_secret_once(request, endpoint, secret, "rotated")


@require_POST
@tenant_view(Permission.MANAGE)
def events_test(request: HttpRequest, membership: Membership) -> HttpResponse:
    event = send_test_event(membership.tenant)
    if event is None:
        messages.error(request, "Set an events URL first: there is nowhere to send a test event.")
        return redirect("dashboard:tenant_settings")
    messages.info(request, f"Test event {event.public_id} sent; its delivery is listed below.")
    return redirect("dashboard:event_list")


@tenant_view(Permission.MANAGE)
def event_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    events = for_tenant(OutboundEvent, membership.tenant).order_by("-created_at")
    page = list_page(events, request.GET.get("page"), EVENTS_PER_PAGE)
    endpoint = for_tenant(EventEndpoint, membership.tenant).first()
    return render(
        request,
        "dashboard/events/list.html",
        {"nav": "settings", "page": page, "events": page.object_list, "endpoint": endpoint},
    )


@tenant_view()
def event_detail(request: HttpRequest, membership: Membership, event_id: str) -> HttpResponse:
    # Found (or 404) before the role check: another tenant's id reads as "no such event".
    event = get_for_tenant_or_404(OutboundEvent, membership.tenant, public_id=event_id)
    require(membership, Permission.MANAGE)
    body = json.dumps(json.loads(event_body(event)), indent=2, ensure_ascii=False)
    return render(
        request, "dashboard/events/detail.html", {"nav": "settings", "event": event, "body": body}
    )


def _show_secret_once(
    request: HttpRequest, endpoint: EventEndpoint, secret: str, event: str
) -> HttpResponse:
    """Rendered in the POST's own response, so the secret is never stored in a session."""
    response = render(
        request,
        "dashboard/events/secret.html",
        {"nav": "settings", "endpoint": endpoint, "secret": secret, "event": event},
    )
    response["Cache-Control"] = "no-store"
    return response
