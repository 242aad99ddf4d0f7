"""Reads that show transcript text outside the call page are in the access log: the call
list's search snippets, and filtered exports, which the log's call filter finds."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AccessAction, AccessLog, CallExport, ExportStatus
from calls.models import CallSession, ConsentScope
from tenancy.roles import Role
from tests.audit.conftest import ended_call
from tests.conftest import TenantWorld
from tests.factories import AgentFactory

LIST_URL = reverse("dashboard:call_list")
LOG_URL = reverse("dashboard:access_log")
CALL_ID = re.compile(r"call_[a-z0-9]+")


def said(world: TenantWorld, text: str, hours_ago: float, **fields: Any) -> CallSession:
    return ended_call(
        world.tenant,
        transcript_text=text,
        started_at=timezone.now() - timedelta(hours=hours_ago),
        **fields,
    )


def logged_calls(client: Client, call: CallSession) -> list[tuple[str, str]]:
    """(action, export id or "") of the access log rows its call filter finds for ``call``."""
    response = client.get(LOG_URL, {"call": call.public_id})
    assert response.status_code == 200
    rows = response.context["page"].object_list
    return [(row.action, row.detail.get("export", "")) for row in rows]


def test_a_search_showing_snippets_is_logged_with_the_query_and_the_calls_shown(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    older = said(tenant_a, "I need a refund for the crown", hours_ago=3)
    newer = said(tenant_a, "A refund please, the bill was wrong", hours_ago=1)
    said(tenant_a, "Book me in for Tuesday", hours_ago=2)
    said(tenant_b, "Refund of another tenant", hours_ago=1)
    client = tenant_a.client_for(Role.AUDITOR)

    response = client.get(LIST_URL, {"q": "refund"})

    assert response.status_code == 200
    assert response.content.decode().count('class="search-snippet"') == 2
    log = AccessLog.objects.get()
    assert (log.tenant, log.action, log.role, log.call) == (
        tenant_a.tenant,
        AccessAction.SEARCH_TRANSCRIPTS,
        Role.AUDITOR,
        None,
    )
    assert log.actor == tenant_a.members[Role.AUDITOR].user.email
    # Newest first, as the page shows them.
    assert log.detail == {"query": "refund", "calls": [newer.public_id, older.public_id]}

    client.get(LIST_URL, {"q": "refund"})
    assert AccessLog.objects.count() == 2  # one row per page view


def test_only_the_calls_of_the_page_shown_are_logged(
    tenant_a: TenantWorld, monkeypatch: Any
) -> None:
    monkeypatch.setattr("dashboard.views.calls.CALLS_PER_PAGE", 2)
    calls = [said(tenant_a, f"refund number {hours}", hours_ago=hours) for hours in (1, 2, 3)]

    tenant_a.client_for(Role.EDITOR).get(LIST_URL, {"q": "refund", "page": "2"})

    assert AccessLog.objects.get().detail["calls"] == [calls[2].public_id]


def test_no_row_without_a_search_or_without_a_snippet(tenant_a: TenantWorld) -> None:
    said(tenant_a, "I need a refund", hours_ago=1)
    ended_call(tenant_a.tenant, consent_scope=ConsentScope.NONE)
    client = tenant_a.client_for(Role.OWNER)

    listed = client.get(LIST_URL)
    filtered = client.get(LIST_URL, {"channel": "widget"})
    nothing_found = client.get(LIST_URL, {"q": "appointment"})
    blank = client.get(LIST_URL, {"q": "   "})

    assert [r.status_code for r in (listed, filtered, nothing_found, blank)] == [200] * 4
    assert CALL_ID.search(listed.content.decode())  # the calls are listed, without words
    assert not AccessLog.objects.exists()


def test_the_call_filter_of_the_log_finds_filtered_exports_and_searches_of_a_call(
    tenant_a: TenantWorld, tenant_b: TenantWorld, django_capture_on_commit_callbacks: Any
) -> None:
    desk, sales = AgentFactory(tenant=tenant_a.tenant), AgentFactory(tenant=tenant_a.tenant)
    wanted = said(tenant_a, "refund for the crown", hours_ago=2, agent=desk)
    other = said(tenant_a, "refund for the bridge", hours_ago=1, agent=sales)
    auditor = tenant_a.client_for(Role.AUDITOR)

    def export(query: dict[str, str]) -> CallExport:
        with django_capture_on_commit_callbacks(execute=True):
            auditor.post(
                reverse("dashboard:export_create"), {"query": urlencode(query), "format": "csv"}
            )
        made = CallExport.objects.latest("pk")
        assert made.status == ExportStatus.DONE
        return made

    of_desk = export({"agent": desk.public_id})
    of_sales = export({"agent": sales.public_id})
    everything = export({})
    auditor.get(LIST_URL, {"q": "crown"})
    # Another tenant's export of its own calls, with the same filters, is not found.
    with django_capture_on_commit_callbacks(execute=True):
        tenant_b.client_for(Role.AUDITOR).post(
            reverse("dashboard:export_create"), {"query": "", "format": "csv"}
        )
    owner = tenant_a.client_for(Role.OWNER)

    found = logged_calls(owner, wanted)

    # The export rows name no call (call=None): the filter finds them through the calls
    # their files held. Newest first.
    assert AccessLog.objects.get(detail__export=of_desk.public_id).call is None
    assert found == [
        (AccessAction.SEARCH_TRANSCRIPTS, ""),
        (AccessAction.EXPORT, everything.public_id),
        (AccessAction.EXPORT, of_desk.public_id),
    ]
    assert logged_calls(owner, other) == [
        (AccessAction.EXPORT, everything.public_id),
        (AccessAction.EXPORT, of_sales.public_id),
    ]
    # Ids that are not call ids are a plain match, never an error.
    assert owner.get(LOG_URL, {"call": 'call_"x%'}).status_code == 200
