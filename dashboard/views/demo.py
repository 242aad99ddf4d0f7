"""/demo/: the seeded bistro's own web site, with the voice widget embedded as a tenant would.

It is what a newcomer opens after ``./scripts/run``: a page that is not the dashboard, so
the widget is seen (and tested in a real browser) exactly as on a customer's site. On by
default except in production (KOE_DEMO_PAGE); it answers 404 when off.
"""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from agents.models import Agent, WidgetKey
from dashboard.management.commands.seed_demo import DEMO_AGENT, DEMO_TENANT


def page_origin(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}"


def demo_widget_key(origin: str) -> tuple[Agent | None, WidgetKey | None]:
    """The demo agent and its active key allowed on ``origin`` (either may be missing).

    Tenant names are not unique: the demo is the oldest tenant of that name, the one
    seed_demo made, so a look-alike tenant created later cannot take the demo page over.
    """
    agent = (
        Agent.objects.filter(tenant__name=DEMO_TENANT, name=DEMO_AGENT)
        .order_by("tenant__created_at", "tenant__pk", "created_at")
        .first()
    )
    if agent is None:
        return None, None
    keys = WidgetKey.objects.filter(agent=agent, revoked_at__isnull=True).order_by("created_at")
    return agent, next((key for key in keys if key.allows_origin(origin)), None)


@require_safe
def demo(request: HttpRequest) -> HttpResponse:
    if not settings.KOE_DEMO_PAGE:
        raise Http404("The demo page is turned off (KOE_DEMO_PAGE).")
    origin = page_origin(request)
    agent, widget_key = demo_widget_key(origin)
    return render(
        request,
        "dashboard/demo/page.html",
        {"agent": agent, "widget_key": widget_key, "origin": origin},
    )
