"""transcript_text follows the stored transcript, through store_progress and a real call."""

from __future__ import annotations

import asyncio

import pytest
from django.urls import reverse

from agents.models import Agent
from calls.ledger import store_progress
from calls.models import CallSession, ConsentScope, TranscriptItem
from tenancy.roles import Role
from tests.calls_search.helpers import make_call
from tests.conftest import TenantWorld
from tests.realtime.conftest import auth_headers
from tests.realtime.doubles import ScriptedProvider
from tests.realtime.helpers import connect, receive, receive_until
from tests.realtime.test_consumer import _turn


def flush(call: CallSession, *items: tuple[str, str]) -> None:
    store_progress(
        call.pk,
        transcript=[{"role": role, "text": text} for role, text in items],
        usage=[],
        interrupted_item_ids=[],
        turn_count=1,
        latencies_ms=[],
    )


@pytest.mark.django_db
def test_each_flush_appends_what_the_caller_and_the_agent_said(tenant_a: TenantWorld) -> None:
    call = make_call(tenant_a.tenant, consent_scope=ConsentScope.TRANSCRIPT)

    flush(call, ("user", "Do you have a table?"), ("assistant", "Yes, for how many?"))
    flush(call, ("tool", '{"ok": true}'), ("user", "Two"), ("assistant", ""))

    call.refresh_from_db()
    assert call.transcript_text == "Do you have a table?\nYes, for how many?\nTwo"
    assert TranscriptItem.objects.filter(call=call).count() == 5


@pytest.mark.django_db
def test_without_transcript_consent_no_text_is_kept(tenant_a: TenantWorld) -> None:
    call = make_call(tenant_a.tenant, consent_scope=ConsentScope.NONE)

    flush(call, ("user", "My card number is 4242"))

    call.refresh_from_db()
    assert call.transcript_text == ""
    assert not TranscriptItem.objects.filter(call=call).exists()


@pytest.mark.django_db(transaction=True)
def test_a_real_calls_words_can_be_searched_once_flushed(
    tenant_a: TenantWorld, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    async def scenario() -> None:
        communicator = await connect(
            f"/v1/realtime?model={openai_agent.public_id}&consent=transcript",
            auth_headers(tenant_a.secret),
        )
        assert (await receive(communicator))["type"] == "session.created"
        _turn(scripted_provider.connections[0], "Is the terrace open tonight", "It is.", "resp_1")
        await receive_until(communicator, "response.done")
        await communicator.disconnect()

    asyncio.run(scenario())

    call = CallSession.objects.get()
    assert call.transcript_text == "Is the terrace open tonight\nIt is."
    response = tenant_a.client_for(Role.AUDITOR).get(
        reverse("dashboard:call_list"), {"q": "terrace"}
    )
    assert call.public_id in response.content.decode()
