"""The call page as an auditor reads it: the timeline, consent, retention, the access log."""

from __future__ import annotations

import datetime
import html
import re

import pytest
from django.urls import reverse

from audit.models import AccessAction, AccessLog
from audit.timeline import EntryKind, call_timeline, format_offset
from calls.models import CallSession, ConsentScope, TranscriptItem
from tenancy.roles import Role
from tests.audit.conftest import add_conversation, ended_call, visible_text
from tests.conftest import TenantWorld


def detail_url(call: CallSession) -> str:
    return reverse("dashboard:call_detail", args=[call.public_id])


def test_the_timeline_shows_turns_tools_latency_and_interruptions_in_order(
    tenant_a: TenantWorld,
) -> None:
    call = ended_call(tenant_a.tenant)
    add_conversation(call)

    response = tenant_a.client_for(Role.AUDITOR).get(detail_url(call))

    content = response.content.decode()
    rows = re.findall(r'<tr class="turn turn-(\w+)" data-offset-ms="(\d+)"', content)
    # Milliseconds from the call's start to each item: what the recording player syncs on.
    assert rows == [
        (EntryKind.CALLER, "1500"),
        (EntryKind.TOOL_CALL, "2250"),
        (EntryKind.TOOL_RESULT, "2750"),
        (EntryKind.AGENT, "3000"),
    ]
    text = html.unescape(content)
    timeline = text[text.index('id="call-timeline"') :]
    positions = [
        timeline.index(fragment)
        for fragment in (
            "Is Dr Mori in today?",
            '"doctor": "Mori"',
            '"open": true',
            "Yes, until five. Shall I book",
        )
    ]
    assert positions == sorted(positions)
    assert "Succeeded in 48 ms" in timeline  # the tool call's invocation
    assert "612 ms" in timeline  # the agent turn's latency
    assert "(interrupted by the caller)" in timeline
    assert "0:01.5" in timeline


def test_the_page_shows_the_consent_that_was_given(tenant_a: TenantWorld) -> None:
    call = ended_call(tenant_a.tenant, consent_scope=ConsentScope.RECORDING)

    text = html.unescape(tenant_a.client_for(Role.AUDITOR).get(detail_url(call)).content.decode())

    consent = text[text.index('id="consent-heading"') :]
    assert "Transcript and recording" in consent
    assert "Widget checkbox" in consent
    assert "May we keep a transcript of this call?" in consent
    assert re.search(r"Prompt version</dt><dd>3<", consent)


@pytest.mark.parametrize("role", Role.values)
def test_every_view_of_a_transcript_is_in_the_access_log(tenant_a: TenantWorld, role: str) -> None:
    call = ended_call(tenant_a.tenant)
    add_conversation(call)
    client = tenant_a.client_for(role)

    client.get(detail_url(call), HTTP_USER_AGENT="Auditor's browser")
    client.get(detail_url(call))

    logs = AccessLog.objects.filter(action=AccessAction.VIEW_TRANSCRIPT)
    assert logs.count() == 2
    log = logs.order_by("pk").first()
    assert log is not None
    member = tenant_a.members[role]
    assert (log.tenant, log.user, log.role) == (tenant_a.tenant, member.user, role)
    assert (log.call, log.call_public_id) == (call, call.public_id)
    assert log.actor == member.user.email
    assert log.ip_address == "127.0.0.1"
    assert log.user_agent == "Auditor's browser"


def test_pages_without_a_transcript_to_show_are_not_logged(tenant_a: TenantWorld) -> None:
    without_consent = ended_call(tenant_a.tenant, consent_scope=ConsentScope.NONE)
    # A row that should never have been kept is neither shown nor counted as read.
    TranscriptItem.objects.create(call=without_consent, sequence=1, role="user", text="4111")
    empty = ended_call(tenant_a.tenant)
    client = tenant_a.client_for(Role.AUDITOR)

    first = client.get(detail_url(without_consent))
    second = client.get(detail_url(empty))

    assert "4111" not in first.content.decode()
    assert "Nothing was said yet in this call" in second.content.decode()
    assert not AccessLog.objects.exists()


def test_retention_markers_say_what_was_removed_and_when(tenant_a: TenantWorld) -> None:
    purged = datetime.datetime(2026, 11, 3, 2, 15, tzinfo=datetime.UTC)
    call = ended_call(
        tenant_a.tenant,
        consent_scope=ConsentScope.RECORDING,
        transcript_purged_at=purged,
        recording_purged_at=purged,
    )

    text = visible_text(tenant_a.client_for(Role.AUDITOR).get(detail_url(call)))

    assert "Transcript removed by retention policy on 3 Nov 2026" in text
    assert "Recording removed by retention policy on 3 Nov 2026" in text
    assert "Nothing was said yet" not in text
    assert not AccessLog.objects.exists()


def test_another_tenants_call_is_not_found_and_not_logged(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    call = ended_call(tenant_b.tenant)
    add_conversation(call)

    response = tenant_a.client_for(Role.OWNER).get(detail_url(call))

    assert response.status_code == 404
    assert not AccessLog.objects.exists()


def test_the_timeline_pairs_tool_calls_with_their_invocations_by_name_in_order(
    tenant_a: TenantWorld,
) -> None:
    call = ended_call(tenant_a.tenant)
    add_conversation(call)

    timeline = call_timeline(call)

    assert [entry.kind for entry in timeline] == [
        EntryKind.CALLER,
        EntryKind.TOOL_CALL,
        EntryKind.TOOL_RESULT,
        EntryKind.AGENT,
    ]
    assert timeline[1].invocation is not None and timeline[1].invocation.duration_ms == 48
    assert timeline[2].invocation is None
    assert timeline[1].arguments == '{\n  "doctor": "Mori"\n}'


def test_offsets_read_as_minutes_seconds_and_tenths() -> None:
    assert format_offset(0) == "0:00.0"
    assert format_offset(1_550) == "0:01.5"
    assert format_offset(3_725_900) == "62:05.9"


def test_an_empty_tool_output_is_still_the_result_of_its_call(tenant_a: TenantWorld) -> None:
    call = ended_call(tenant_a.tenant)
    for sequence, arguments in ((1, "{}"), (2, "")):
        TranscriptItem.objects.create(
            call=call,
            sequence=sequence,
            role="tool",
            tool_name="hang_up",
            tool_arguments=arguments,
            item_id="item_f9",
        )

    assert [entry.kind for entry in call_timeline(call)] == [
        EntryKind.TOOL_CALL,
        EntryKind.TOOL_RESULT,
    ]
