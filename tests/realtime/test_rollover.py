"""Provider sessions that survive (agents.realtime.rollover): a session that drops, expires
or nears its limit is replaced with the conversation carried over, and the caller's call
goes on; the caller's client sees none of it but a response that was cut off."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.urls import reverse

from agents.models import Agent
from agents.realtime.rollover import (
    CONDENSED_CHARS,
    REPLAYED_ITEMS,
    SessionClock,
    replay_events,
)
from agents.realtime.tracker import TranscriptEntry
from calls.models import CallSession, TranscriptItem, UsageRecord
from tenancy.roles import Role
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, CallFactory
from tests.fakes.realtime_server import FakeRealtimeServer, Turn
from tests.realtime.conftest import auth_headers
from tests.realtime.doubles import ScriptedProvider
from tests.realtime.helpers import connect, eventually
from tests.realtime.test_upstream import (
    SERVER_EVENT,
    UPSTREAM_KEY,
    collect_until,
    speak,
    upstream_settings,  # noqa: F401 (a fixture, shared)
)

pytestmark = pytest.mark.django_db(transaction=True)

HOURS = Turn(user="When do you open?", assistant="We open at nine every weekday.")
PARKING = Turn(user="Is there parking?", assistant="Yes, behind the building.")


async def two_turns(
    openai_agent: Agent,
    world: TenantWorld,
    fake: FakeRealtimeServer,
    settings: Any,
    between: Any = None,
) -> list[dict[str, Any]]:
    """A caller asks two questions; ``between`` them (a coroutine function) the provider
    does something. Returns every event the caller's client saw."""
    settings.KOE_OPENAI_REALTIME_URL = fake.url
    seen: list[dict[str, Any]] = []
    communicator = await connect(
        f"/v1/realtime?model={openai_agent.public_id}&consent=transcript",
        auth_headers(world.secret),
    )
    await collect_until(communicator, "session.updated", seen)
    await speak(communicator)
    await collect_until(communicator, "response.done", seen)
    if between is not None:
        await between()
    await eventually(lambda: len(fake.connections) == 2, timeout=10)
    await asyncio.sleep(0.3)  # the new session has had the conversation replayed
    await speak(communicator)
    await collect_until(communicator, "response.done", seen)
    await communicator.disconnect()
    return seen


def replayed_texts(fake: FakeRealtimeServer) -> list[tuple[str, str]]:
    creates = [e for e in fake.received if e["type"] == "conversation.item.create"]
    return [(e["item"]["role"], e["item"]["content"][0]["text"]) for e in creates]


@pytest.mark.parametrize("fault", ["drop", "expire"])
def test_a_lost_session_is_replaced_and_the_conversation_goes_on(
    fault: str,
    tenant_a: TenantWorld,
    openai_agent: Agent,
    upstream_settings: Any,  # noqa: F811
) -> None:
    fake = FakeRealtimeServer([HOURS, PARKING], expected_key=UPSTREAM_KEY)

    async def scenario() -> list[dict[str, Any]]:
        async with fake:
            # "drop": the connection breaks; "expire": OpenAI's 60-minute limit is reached.
            return await two_turns(
                openai_agent, tenant_a, fake, upstream_settings, getattr(fake, fault)
            )

    seen = asyncio.run(scenario())
    for event in seen:
        SERVER_EVENT.validate_python(event)
    types = [event["type"] for event in seen]
    # The client saw one session, no error, and both answers.
    assert types.count("session.created") == 1
    assert "error" not in types
    assert types.count("response.done") == 2
    assert fake.invalid == [] and fake.faults == []

    # The new session got the agent's configuration, then the conversation so far.
    second_session = fake.received[[e["type"] for e in fake.received].index("session.update", 1) :]
    assert second_session[0]["session"]["instructions"] == "You book tables at Acme."
    assert replayed_texts(fake)[1:] == [
        ("user", "When do you open?"),
        ("assistant", "We open at nine every weekday."),
    ]
    assert "continues from an earlier session" in replayed_texts(fake)[0][1]

    call = CallSession.objects.get()
    assert call.end_reason == "client_closed"
    assert call.provider_sessions == 2
    # The transcript is whole, and nothing carried over is in it twice.
    assert list(TranscriptItem.objects.order_by("sequence").values_list("role", "text")) == [
        ("user", "When do you open?"),
        ("assistant", "We open at nine every weekday."),
        ("user", "Is there parking?"),
        ("assistant", "Yes, behind the building."),
    ]
    assert UsageRecord.objects.filter(call=call).count() == 2  # each session's response


def test_a_response_cut_off_is_closed_for_the_client_and_answered_again(
    tenant_a: TenantWorld,
    openai_agent: Agent,
    upstream_settings: Any,  # noqa: F811
) -> None:
    # Dropped mid-answer: after the response has started, before it is done.
    fake = FakeRealtimeServer(
        [HOURS, HOURS], expected_key=UPSTREAM_KEY, close_after_events=12, close_sessions=1
    )

    async def scenario() -> list[dict[str, Any]]:
        async with fake:
            upstream_settings.KOE_OPENAI_REALTIME_URL = fake.url
            seen: list[dict[str, Any]] = []
            communicator = await connect(
                f"/v1/realtime?model={openai_agent.public_id}&consent=transcript",
                auth_headers(tenant_a.secret),
            )
            await collect_until(communicator, "session.updated", seen)
            await speak(communicator)
            await collect_until(communicator, "response.done", seen)  # the cut-off one
            await collect_until(communicator, "response.done", seen)  # answered again
            await communicator.disconnect()
            return seen

    seen = asyncio.run(scenario())
    done = [event for event in seen if event["type"] == "response.done"]
    assert done[0]["response"]["status"] == "failed"
    assert done[0]["response"]["status_details"]["error"]["code"] == "provider_session_replaced"
    assert done[1]["response"]["status"] == "completed"
    for event in seen:
        SERVER_EVENT.validate_python(event)
    # The new session was asked to answer, with the caller's question carried over.
    assert ("user", "When do you open?") in replayed_texts(fake)
    second_session = fake.received[[e["type"] for e in fake.received].index("session.update", 1) :]
    assert "response.create" in [event["type"] for event in second_session]
    assert CallSession.objects.get().provider_sessions == 2


def test_a_session_is_replaced_at_a_quiet_moment_before_its_limit(
    tenant_a: TenantWorld,
    openai_agent: Agent,
    upstream_settings: Any,  # noqa: F811
) -> None:
    upstream_settings.KOE_PROVIDER_SESSION_SECONDS = 3  # replaced after ~2.25 s, when quiet
    fake = FakeRealtimeServer([HOURS, PARKING], expected_key=UPSTREAM_KEY)

    async def scenario() -> list[dict[str, Any]]:
        async with fake:
            return await two_turns(openai_agent, tenant_a, fake, upstream_settings)

    seen = asyncio.run(scenario())
    types = [event["type"] for event in seen]
    assert types.count("session.created") == 1 and "error" not in types
    assert types.count("response.done") == 2
    assert all(e["response"]["status"] == "completed" for e in seen if e["type"] == "response.done")
    assert CallSession.objects.get().provider_sessions == 2


def test_expires_at_in_session_created_sets_when_a_session_is_replaced() -> None:
    clock = SessionClock(limit_seconds=3600)
    clock.created({"type": "session.created", "session": {"expires_at": 0}})  # not given
    assert not clock.due(clock.opened + 3000)
    assert clock.due(clock.opened + 3500)
    import time

    clock.created({"type": "session.created", "session": {"expires_at": time.time() + 600}})
    assert not clock.due(clock.opened + 400)
    assert clock.due(clock.opened + 500)  # two minutes before it would expire


def test_a_provider_that_fails_again_at_once_ends_the_call(
    tenant_a: TenantWorld, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    async def scenario() -> CallSession:
        communicator = await connect(
            f"/v1/realtime?model={openai_agent.public_id}", auth_headers(tenant_a.secret)
        )
        await eventually(lambda: len(scripted_provider.connections) == 1)
        scripted_provider.connections[0].hang_up()
        await eventually(lambda: len(scripted_provider.connections) == 2)
        scripted_provider.connections[1].hang_up()  # lost again within seconds: failing
        await communicator.receive_output(timeout=5)
        await communicator.disconnect()

        for _ in range(500):
            call = await database_sync_to_async(CallSession.objects.filter(status="ended").first)()
            if call is not None:
                return call
            await asyncio.sleep(0.02)
        raise AssertionError("the call never ended")

    call = asyncio.run(scenario())
    assert call.end_reason == "provider_error"
    assert call.provider_sessions == 2


def test_the_replay_keeps_recent_items_and_condenses_older_ones() -> None:
    transcript = [
        TranscriptEntry("user" if n % 2 == 0 else "assistant", f"line {n} " + "x" * 200)
        for n in range(REPLAYED_ITEMS + 60)
    ]
    transcript.append(
        TranscriptEntry("tool", "", "", tool_name="book_table", tool_arguments='{"people": 2}')
    )
    transcript.append(TranscriptEntry("tool", '{"booked": true}', "", tool_name="book_table"))
    replay = replay_events(transcript)
    items = [event["item"] for event in replay]
    assert all(event["type"] == "conversation.item.create" for event in replay)
    assert len({item["id"] for item in items}) == len(items)
    condensed = items[1]["content"][0]["text"]
    assert condensed.startswith("Earlier in this call:\n…")
    assert len(condensed) <= CONDENSED_CHARS + 50
    assert "line 61" in condensed  # the newest of the older lines are kept
    recent = items[2:]
    assert len(recent) == REPLAYED_ITEMS
    assert recent[-2]["content"][0]["text"] == (
        '(The agent called the tool book_table with {"people": 2}.)'
    )
    assert recent[-1]["role"] == "system"
    assert recent[-3]["role"] == "assistant"
    assert recent[-3]["content"][0]["type"] == "output_text"


def test_the_call_page_says_when_a_call_used_more_than_one_provider_session(
    tenant_a: TenantWorld,
) -> None:
    call = CallFactory(agent=AgentFactory(tenant=tenant_a.tenant))
    page = reverse("dashboard:call_detail", args=[call.public_id])
    assert "Provider sessions" not in tenant_a.client_for(Role.OWNER).get(page).content.decode()
    CallSession.objects.filter(pk=call.pk).update(provider_sessions=3)
    shown = tenant_a.client_for(Role.OWNER).get(page).content.decode()
    assert "Provider sessions" in shown
    assert "<dd>3 <small" in shown


def test_an_agent_may_talk_for_longer_than_a_providers_session(
    tenant_a: TenantWorld, openai_agent: Agent
) -> None:
    """Four hours: OpenAI's 60-minute sessions are replaced as the call goes on."""
    api = Client(headers={"Authorization": f"Bearer {tenant_a.secret}"})
    path = f"/v1/agents/{openai_agent.public_id}"
    response = api.patch(
        path, {"max_call_duration_seconds": 4 * 3600}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["max_call_duration_seconds"] == 4 * 3600
    too_long = api.patch(
        path, {"max_call_duration_seconds": 4 * 3600 + 1}, content_type="application/json"
    )
    assert too_long.status_code == 400, too_long.content


def test_client_events_sent_while_a_session_opens_follow_the_replay_once(
    tenant_a: TenantWorld,
    openai_agent: Agent,
    scripted_provider: type[ScriptedProvider],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opening = scripted_provider.connect

    async def slowly(self: ScriptedProvider, *args: Any) -> Any:
        if scripted_provider.connections:
            await asyncio.sleep(0.3)  # the second session takes a moment to open
        return await opening(self, *args)

    monkeypatch.setattr(scripted_provider, "connect", slowly)

    async def scenario() -> list[str]:
        communicator = await connect(
            f"/v1/realtime?model={openai_agent.public_id}", auth_headers(tenant_a.secret)
        )
        await eventually(lambda: len(scripted_provider.connections) == 1)
        await asyncio.sleep(0.1)
        scripted_provider.connections[0].hang_up()
        await asyncio.sleep(0.1)  # the renewal is under way
        await communicator.send_json_to({"type": "input_audio_buffer.append", "audio": "AAAA"})
        await communicator.send_json_to({"type": "response.create"})
        await eventually(lambda: len(scripted_provider.connections) == 2, timeout=5)
        second = scripted_provider.connections[1]
        await eventually(lambda: any(e["type"] == "response.create" for e in second.sent))
        await communicator.disconnect()
        return [event["type"] for event in second.sent]

    sent = asyncio.run(scenario())
    # The agent's configuration, the replay, then the client's request, once; its audio,
    # spoken while no session was there to hear it, is not sent.
    assert sent[0] == "session.update"
    assert sent.count("response.create") == 1 and sent[-1] == "response.create"
    assert "input_audio_buffer.append" not in sent
