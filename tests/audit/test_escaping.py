"""Hostile text from callers, tools and agent names is shown as text, never run as markup."""

from __future__ import annotations

import csv
import io
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from audit.models import CallExport
from calls.models import CallSession, TranscriptItem
from tenancy.roles import Role
from tests.audit.conftest import HOSTILE, ended_call
from tests.audit.test_exports import download
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tools.invocations import ToolInvocation


def hostile_call(world: TenantWorld, payload: str) -> CallSession:
    agent = AgentFactory(tenant=world.tenant, name=f"Desk {payload}")
    call = ended_call(world.tenant, agent=agent, end_detail=payload, end_user_ref=payload)
    TranscriptItem.objects.create(call=call, sequence=1, role="user", text=payload)
    TranscriptItem.objects.create(
        call=call,
        sequence=2,
        role="tool",
        tool_name="lookup",
        tool_arguments=json.dumps({"query": payload}),
    )
    TranscriptItem.objects.create(
        call=call, sequence=3, role="tool", tool_name="lookup", text=payload
    )
    TranscriptItem.objects.create(call=call, sequence=4, role="assistant", text=payload)
    ToolInvocation.objects.create(
        tenant=world.tenant,
        call=call,
        tool_name="lookup",
        function_call_id="fc_1",
        idempotency_key=f"{call.public_id}:fc_1",
        source="call",
        execution="inline",
        status="failed",
        error_code="bad",
        stores_content=True,
        arguments={"query": payload},
        result=payload,
    )
    return call


def assert_shown_as_text(content: str, payload: str) -> None:
    assert payload not in content
    # The payload's markup characters are there, escaped (JSON's own quotes escaped too).
    assert escape(payload) in content or escape(json.dumps(payload))[1:-1] in content


@pytest.mark.parametrize("payload", HOSTILE)
def test_call_page_and_list_show_hostile_text_as_text(tenant_a: TenantWorld, payload: str) -> None:
    call = hostile_call(tenant_a, payload)
    client = tenant_a.client_for(Role.AUDITOR)

    page = client.get(reverse("dashboard:call_detail", args=[call.public_id])).content.decode()
    listing = client.get(reverse("dashboard:call_list")).content.decode()

    assert_shown_as_text(page, payload)
    assert page.count(escape(payload)) >= 5  # agent, end detail, end user, turns, result
    assert_shown_as_text(listing, payload)


@pytest.mark.parametrize("payload", HOSTILE)
def test_the_access_log_shows_hostile_filters_as_text(
    tenant_a: TenantWorld, payload: str, django_capture_on_commit_callbacks: Any
) -> None:
    hostile_call(tenant_a, payload)
    auditor = tenant_a.client_for(Role.AUDITOR)
    with django_capture_on_commit_callbacks(execute=True):
        auditor.post(
            reverse("dashboard:export_create"),
            {"query": urlencode({"q": payload}), "format": "csv"},
        )
    assert CallExport.objects.exists()

    content = tenant_a.client_for(Role.OWNER).get(reverse("dashboard:access_log")).content.decode()

    assert payload not in content
    assert f"q={escape(payload)}" in content


@pytest.mark.parametrize("payload", HOSTILE)
def test_exports_carry_hostile_text_as_data(
    tenant_a: TenantWorld, payload: str, django_capture_on_commit_callbacks: Any
) -> None:
    call = hostile_call(tenant_a, payload)
    client: Client = tenant_a.client_for(Role.AUDITOR)
    contents = {}
    for export_format in ("json", "csv", "txt"):
        with django_capture_on_commit_callbacks(execute=True):
            client.post(
                reverse("dashboard:export_create"),
                {"call": call.public_id, "format": export_format},
            )
        contents[export_format] = download(client, CallExport.objects.latest("pk"))

    record = json.loads(contents["json"])["calls"][0]
    assert record["agent"]["name"] == f"Desk {payload}"
    assert record["transcript"][0]["text"] == payload
    assert record["tool_invocations"][0]["arguments"] == {"query": payload}
    rows = list(csv.DictReader(io.StringIO(contents["csv"])))
    assert rows[0]["text"] == payload and rows[0]["end_detail"] == payload
    assert f"Caller: {payload}" in contents["txt"]
