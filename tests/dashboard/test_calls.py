"""The calls pages: list with filters, a call's record and transcript, ending a live call."""

from __future__ import annotations

import asyncio
import html
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from agents.models import Agent
from calls.models import (
    CallSession,
    CallStatus,
    ConsentMethod,
    ConsentScope,
    EndReason,
    TranscriptItem,
    UsageRecord,
)
from dashboard.views.calls import LatencySummary, format_duration, latency_summary
from tenancy.models import Tenant
from tenancy.roles import Role
from tests.conftest import TenantWorld
from tests.factories import AgentFactory

EDITING_ROLES = [Role.OWNER, Role.ADMIN, Role.EDITOR]


def make_call(tenant: Tenant, agent: Agent | None = None, **fields: Any) -> CallSession:
    values: dict[str, Any] = {
        "tenant": tenant,
        "agent": agent,
        "agent_version": agent.current_version if agent else None,
        "agent_name": agent.name if agent else "Reception",
        "version_number": agent.current_version.number if agent else 1,
        "channel": "widget",
        "provider": "local",
        "model": "koe-local",
    }
    values.update(fields)
    return CallSession.objects.create(**values)


def ended_call(tenant: Tenant, agent: Agent | None = None, **fields: Any) -> CallSession:
    started = timezone.now() - timedelta(minutes=5)
    values: dict[str, Any] = {
        "status": CallStatus.ENDED,
        "started_at": started,
        "ended_at": started + timedelta(seconds=125),
        "duration_ms": 125_400,
        "end_reason": EndReason.CLIENT_CLOSED,
    }
    values.update(fields)
    return make_call(tenant, agent, **values)


def stale_started_at() -> Any:
    return timezone.now() - timedelta(seconds=3600 + settings.KOE_STALE_CALL_GRACE_SECONDS + 60)


def text_of(response: Any) -> str:
    return html.unescape(response.content.decode())


def detail_url(call: CallSession) -> str:
    return reverse("dashboard:call_detail", args=[call.public_id])


def end_url(call: CallSession) -> str:
    return reverse("dashboard:call_end", args=[call.public_id])


def listen_to(call: CallSession) -> str:
    """A test channel in the call's group, standing in for the consumer holding the call."""
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(call.group_name, channel)
    return channel


def next_message(channel: str) -> dict[str, Any]:
    async def receive() -> dict[str, Any]:
        # A bounded wait, so a message that never comes fails the test instead of hanging it.
        return await asyncio.wait_for(get_channel_layer().receive(channel), timeout=2)

    return async_to_sync(receive)()


def assert_nothing_received(channel: str) -> None:
    # receive() waits forever on an empty channel: send a marker and check it comes first.
    layer = get_channel_layer()
    async_to_sync(layer.send)(channel, {"type": "test.marker"})
    assert next_message(channel) == {"type": "test.marker"}


# --- plain functions -------------------------------------------------------------------------


def test_latency_summary_counts_averages_and_takes_the_nearest_rank_p95() -> None:
    latencies = [100 * number for number in range(1, 21)]  # 100 .. 2000

    summary = latency_summary(latencies)

    assert summary == LatencySummary(count=20, average_ms=1050, p95_ms=1900)


def test_latency_summary_of_one_turn_and_of_none() -> None:
    assert latency_summary([640]) == LatencySummary(count=1, average_ms=640, p95_ms=640)
    assert latency_summary([]) is None


def test_latency_summary_ignores_values_that_are_not_latencies() -> None:
    summary = latency_summary([300, "fast", None, -5, True, 500.0])

    assert summary == LatencySummary(count=2, average_ms=400, p95_ms=500)


def test_format_duration_is_minutes_and_seconds() -> None:
    assert format_duration(125_400) == "02:05"
    assert format_duration(0) == "00:00"
    assert format_duration(3_723_000) == "62:03"
    assert format_duration(None) == "—"


# --- list ------------------------------------------------------------------------------------


def test_list_shows_only_the_current_tenants_calls(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, name="Front desk")
    ours = ended_call(tenant_a.tenant, agent, total_tokens=4321, turn_count=7)
    theirs = ended_call(tenant_b.tenant, agent_name="Bistro booking")

    response = tenant_a.client_for(Role.AUDITOR).get(reverse("dashboard:call_list"))

    assert response.status_code == 200
    text = text_of(response)
    assert ours.public_id in text
    assert "Front desk" in text and "v1" in text
    assert "02:05" in text
    assert "Caller hung up" in text
    assert "4321" in text
    assert theirs.public_id not in text
    assert "Bistro booking" not in text


def test_list_marks_active_calls_live(tenant_a: TenantWorld) -> None:
    make_call(tenant_a.tenant)

    response = tenant_a.client_for(Role.EDITOR).get(reverse("dashboard:call_list"))

    assert ">live</span>" in response.content.decode()


def test_list_without_calls_explains_how_calls_arrive(tenant_a: TenantWorld) -> None:
    response = tenant_a.client_for(Role.OWNER).get(reverse("dashboard:call_list"))

    assert response.status_code == 200
    assert "Calls appear here when someone talks to one of your agents" in text_of(response)


def test_list_filters_by_agent_and_status(tenant_a: TenantWorld) -> None:
    front_desk = AgentFactory(tenant=tenant_a.tenant, name="Front desk")
    bookings = AgentFactory(tenant=tenant_a.tenant, name="Bookings")
    live_front = make_call(tenant_a.tenant, front_desk)
    ended_front = ended_call(tenant_a.tenant, front_desk)
    live_bookings = make_call(tenant_a.tenant, bookings)
    client = tenant_a.client_for(Role.AUDITOR)

    by_agent = text_of(client.get(reverse("dashboard:call_list"), {"agent": front_desk.public_id}))
    by_both = text_of(
        client.get(
            reverse("dashboard:call_list"), {"agent": front_desk.public_id, "status": "ended"}
        )
    )
    nothing = client.get(reverse("dashboard:call_list"), {"agent": "agt_missing"})

    assert live_front.public_id in by_agent and ended_front.public_id in by_agent
    assert live_bookings.public_id not in by_agent
    assert ended_front.public_id in by_both
    assert live_front.public_id not in by_both
    assert nothing.status_code == 200
    assert "No calls match these filters" in text_of(nothing)


def test_list_ignores_bad_filter_and_page_values(tenant_a: TenantWorld) -> None:
    call = ended_call(tenant_a.tenant)

    response = tenant_a.client_for(Role.AUDITOR).get(
        reverse("dashboard:call_list"), {"status": "<bogus>", "page": "x"}
    )

    assert response.status_code == 200
    assert call.public_id in text_of(response)


def test_list_pages_fifty_calls_newest_first(tenant_a: TenantWorld) -> None:
    now = timezone.now()
    calls = [ended_call(tenant_a.tenant, started_at=now - timedelta(minutes=i)) for i in range(51)]
    client = tenant_a.client_for(Role.AUDITOR)

    first = text_of(client.get(reverse("dashboard:call_list")))
    second = text_of(client.get(reverse("dashboard:call_list"), {"page": 2}))

    assert calls[0].public_id in first and calls[49].public_id in first
    assert first.index(calls[0].public_id) < first.index(calls[1].public_id)
    assert calls[50].public_id not in first
    assert calls[50].public_id in second
    assert calls[0].public_id not in second


def test_list_query_count_does_not_grow_with_the_number_of_calls(
    tenant_a: TenantWorld, django_assert_num_queries: Any
) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    ended_call(tenant_a.tenant, agent)
    client = tenant_a.client_for(Role.AUDITOR)
    with CaptureQueriesContext(connection) as one_call:
        assert client.get(reverse("dashboard:call_list")).status_code == 200
    for _ in range(10):
        ended_call(tenant_a.tenant, AgentFactory(tenant=tenant_a.tenant))

    with django_assert_num_queries(len(one_call.captured_queries)):
        response = client.get(reverse("dashboard:call_list"))

    assert text_of(response).count(">v1</a>") == 11


# --- detail ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", Role.values)
def test_every_role_sees_a_call_with_its_transcript_and_usage(
    tenant_a: TenantWorld, role: str
) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, name="Front desk")
    call = ended_call(
        tenant_a.tenant,
        agent,
        consent_scope=ConsentScope.TRANSCRIPT,
        consent_method=ConsentMethod.WIDGET,
        consent_at=timezone.now(),
        consent_text="May we keep a transcript of this call?",
        end_user_ref="customer-42",
        end_detail="Client closed the connection (1000).",
        turn_count=2,
        latencies_ms=[400, 600],
    )
    TranscriptItem.objects.create(call=call, sequence=1, role="user", text="Is Dr Mori in today?")
    TranscriptItem.objects.create(
        call=call, sequence=2, role="assistant", text="Yes, until five.", latency_ms=612
    )
    TranscriptItem.objects.create(
        call=call,
        sequence=3,
        role="tool",
        tool_name="check_schedule",
        tool_arguments='{"doctor": "Mori"}',
    )
    TranscriptItem.objects.create(
        call=call, sequence=4, role="tool", tool_name="check_schedule", text='{"open": true}'
    )
    TranscriptItem.objects.create(
        call=call, sequence=5, role="assistant", text="Shall I book", interrupted=True
    )
    for number, (audio_in, total) in enumerate([(120, 300), (80, 250)], start=1):
        UsageRecord.objects.create(
            call=call,
            tenant=tenant_a.tenant,
            response_id=f"resp_{number}",
            provider="local",
            model="koe-local",
            input_audio_tokens=audio_in,
            total_tokens=total,
        )

    response = tenant_a.client_for(role).get(detail_url(call))

    assert response.status_code == 200
    text = text_of(response)
    version_url = reverse("dashboard:agent_version", args=[agent.public_id, 1])
    assert f'href="{version_url}"' in response.content.decode()
    assert "customer-42" in text
    assert "Widget checkbox" in text
    assert "May we keep a transcript of this call?" in text
    assert "Client closed the connection (1000)." in text
    assert "Caller" in text and "Is Dr Mori in today?" in text
    assert "Agent" in text and "Yes, until five." in text and "612 ms" in text
    assert "check_schedule" in text and '"doctor": "Mori"' in text and '"open": true' in text
    assert "(interrupted by the caller)" in text
    assert "500 ms" in text  # average latency
    assert "resp_1" in text and "resp_2" in text
    assert ">550<" in response.content.decode()  # total tokens over both responses
    assert ">200<" in response.content.decode()  # input audio tokens over both responses


def test_call_of_a_deleted_agent_still_shows_its_name_and_version(tenant_a: TenantWorld) -> None:
    call = ended_call(tenant_a.tenant, agent_name="Old desk", version_number=4)

    response = tenant_a.client_for(Role.AUDITOR).get(detail_url(call))

    assert response.status_code == 200
    assert "Old desk" in text_of(response)
    assert "version 4" in text_of(response)


def test_call_without_transcript_consent_shows_no_transcript(tenant_a: TenantWorld) -> None:
    call = ended_call(tenant_a.tenant, consent_scope=ConsentScope.NONE)
    # Even a row that should never have been stored must not be shown.
    TranscriptItem.objects.create(call=call, sequence=1, role="user", text="My card is 4111")

    response = tenant_a.client_for(Role.AUDITOR).get(detail_url(call))

    assert response.status_code == 200
    text = text_of(response)
    assert "No transcript: the caller did not consent to storing one" in text
    assert "My card is 4111" not in text


def test_transcript_text_is_escaped(tenant_a: TenantWorld) -> None:
    call = ended_call(tenant_a.tenant, consent_scope=ConsentScope.RECORDING)
    TranscriptItem.objects.create(
        call=call, sequence=1, role="user", text="<script>alert(1)</script>"
    )
    TranscriptItem.objects.create(
        call=call, sequence=2, role="tool", tool_name="lookup", text="<img src=x onerror=alert(2)>"
    )

    content = tenant_a.client_for(Role.AUDITOR).get(detail_url(call)).content.decode()

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert "<script>alert(1)</script>" not in content
    assert "<img src=x" not in content


@pytest.mark.parametrize("role", Role.values)
def test_other_tenants_members_get_404_for_detail_and_end(
    tenant_a: TenantWorld, tenant_b: TenantWorld, role: str
) -> None:
    call = make_call(tenant_a.tenant)
    channel = listen_to(call)
    client = tenant_b.client_for(role)

    assert client.get(detail_url(call)).status_code == 404
    assert client.post(end_url(call)).status_code == 404
    call.refresh_from_db()
    assert call.status == CallStatus.ACTIVE
    assert_nothing_received(channel)


def test_unknown_call_is_404(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for(Role.OWNER)

    response = client.get(reverse("dashboard:call_detail", args=["call_doesnotexist"]))

    assert response.status_code == 404


def test_end_button_only_for_active_calls_and_editing_roles(tenant_a: TenantWorld) -> None:
    active = make_call(tenant_a.tenant)
    ended = ended_call(tenant_a.tenant)
    button = 'action="{}"'

    assert button.format(end_url(active)) in (
        tenant_a.client_for(Role.EDITOR).get(detail_url(active)).content.decode()
    )
    assert button.format(end_url(active)) not in (
        tenant_a.client_for(Role.AUDITOR).get(detail_url(active)).content.decode()
    )
    assert button.format(end_url(ended)) not in (
        tenant_a.client_for(Role.OWNER).get(detail_url(ended)).content.decode()
    )


# --- ending a call ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", EDITING_ROLES)
def test_editing_roles_end_an_active_call_through_the_channel_layer(
    tenant_a: TenantWorld, role: str
) -> None:
    call = make_call(tenant_a.tenant)
    channel = listen_to(call)
    member = tenant_a.members[role].user

    response = tenant_a.client_for(role).post(end_url(call), follow=True)

    assert response.redirect_chain == [(detail_url(call), 302)]
    assert "Ending the call…" in text_of(response)
    assert next_message(channel) == {
        "type": "call.end",
        "reason": "operator",
        "detail": f"Ended from the dashboard by {member.email}",
    }
    # The live call records its own end; the page only asked it to.
    call.refresh_from_db()
    assert call.status == CallStatus.ACTIVE


def test_auditor_cannot_end_a_call(tenant_a: TenantWorld) -> None:
    call = make_call(tenant_a.tenant, started_at=stale_started_at())
    channel = listen_to(call)

    response = tenant_a.client_for(Role.AUDITOR).post(end_url(call))

    assert response.status_code == 403
    call.refresh_from_db()
    assert call.status == CallStatus.ACTIVE
    assert call.end_reason == ""
    assert_nothing_received(channel)


def test_stale_active_call_is_ended_directly(tenant_a: TenantWorld) -> None:
    call = make_call(tenant_a.tenant, started_at=stale_started_at())
    editor = tenant_a.members[Role.EDITOR].user

    response = tenant_a.client_for(Role.EDITOR).post(end_url(call))

    assert response.status_code == 302
    assert response.url == detail_url(call)
    call.refresh_from_db()
    assert call.status == CallStatus.ENDED
    assert call.end_reason == EndReason.OPERATOR
    assert call.end_detail == f"Ended from the dashboard by {editor.email}"
    assert call.ended_at is not None


def test_ending_an_ended_call_changes_nothing(tenant_a: TenantWorld) -> None:
    call = ended_call(tenant_a.tenant)
    channel = listen_to(call)

    response = tenant_a.client_for(Role.ADMIN).post(end_url(call), follow=True)

    assert "This call has already ended." in text_of(response)
    call.refresh_from_db()
    assert call.end_reason == EndReason.CLIENT_CLOSED
    assert_nothing_received(channel)


def test_end_is_post_only(tenant_a: TenantWorld) -> None:
    call = make_call(tenant_a.tenant, started_at=stale_started_at())

    response = tenant_a.client_for(Role.OWNER).get(end_url(call))

    assert response.status_code == 405
    call.refresh_from_db()
    assert call.status == CallStatus.ACTIVE


def test_unreachable_channel_layer_is_reported_not_a_500(
    tenant_a: TenantWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(group: str, message: dict[str, Any]) -> None:
        raise ConnectionError("the channel layer is down")

    monkeypatch.setattr(get_channel_layer(), "group_send", refuse)
    live = make_call(tenant_a.tenant)
    stale = make_call(tenant_a.tenant, started_at=stale_started_at())
    client = tenant_a.client_for(Role.EDITOR)

    live_response = client.post(end_url(live), follow=True)
    stale_response = client.post(end_url(stale))

    assert live_response.status_code == 200
    assert "Could not reach the live call" in text_of(live_response)
    live.refresh_from_db()
    stale.refresh_from_db()
    assert live.status == CallStatus.ACTIVE
    # No process holds a stale call, so the layer is not needed to end it.
    assert stale_response.status_code == 302
    assert stale.status == CallStatus.ENDED


def test_a_webrtc_calls_page_shows_its_media_quality(tenant_a: TenantWorld) -> None:
    quality = {
        "round_trip_ms": 42.5,
        "caller_packets_received": 3000,
        "caller_packets_lost": 30,
        "caller_loss_percent": 0.99,
        "caller_jitter_ms": 3.1,
        "agent_packets_lost": 0,
        "agent_loss_percent": 0.0,
        "agent_jitter_ms": 1.2,
    }
    webrtc = ended_call(tenant_a.tenant, media_quality=quality)
    websocket = ended_call(tenant_a.tenant)
    client = tenant_a.client_for(Role.EDITOR)
    shown = text_of(client.get(detail_url(webrtc)))
    assert "Media (WebRTC)" in shown
    assert "round trip 42.5 ms" in shown
    assert "caller's audio: 0.99% lost, jitter 3.1 ms" in shown
    assert "agent's audio: 0.0% lost, jitter 1.2 ms" in shown
    assert "Media (WebRTC)" not in text_of(client.get(detail_url(websocket)))
