"""Consent is enforced twice, and each layer holds on its own.

The broker collects nothing for a call without transcript consent, and the store writes
no transcript for such a call whatever it is handed. Each test disables the other layer,
so removing either check fails a test (the consent matrix checks both together).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agents.models import Agent
from agents.realtime import keeping as keeping_module
from calls.ledger import store_progress
from calls.models import CallSession, TranscriptItem
from tests.conftest import TenantWorld
from tests.factories import CallFactory
from tests.realtime.conftest import auth_headers
from tests.realtime.doubles import ScriptedProvider, usage
from tests.realtime.helpers import connect, receive, receive_until

pytestmark = pytest.mark.django_db(transaction=True)

WORDS = "my card number is 4242"


def test_the_store_writes_no_transcript_for_a_call_without_consent(
    openai_agent: Agent,
) -> None:
    call = CallFactory(agent=openai_agent, consent_scope="none")
    assert not call.stores_transcript
    store_progress(
        call.pk,
        transcript=[{"role": "user", "text": WORDS, "item_id": "item_1"}],
        usage=[{"response_id": "resp_1", "usage": usage()}],
        interrupted_item_ids=["item_1"],
        turn_count=1,
        latencies_ms=[480],
    )
    call.refresh_from_db()
    assert not TranscriptItem.objects.exists()
    assert call.transcript_text == ""
    # What consent does not cover is metadata: it is kept.
    assert (call.usage.count(), call.turn_count, call.latencies_ms) == (1, 1, [480])


def test_the_broker_hands_no_words_of_a_call_without_consent_to_the_store(
    tenant_a: TenantWorld,
    openai_agent: Agent,
    scripted_provider: type[ScriptedProvider],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A store that would write whatever it is given (its own check removed)."""
    handed: list[list[dict[str, Any]]] = []

    def permissive_store(call_id: int, *, transcript: list[dict[str, Any]], **rest: Any) -> None:
        handed.append(transcript)
        call = CallSession.objects.get(pk=call_id)
        for number, entry in enumerate(transcript, start=1):
            TranscriptItem.objects.create(call=call, sequence=number, **entry)

    monkeypatch.setattr(keeping_module, "store_progress", permissive_store)

    async def scenario() -> None:
        communicator = await connect(  # no consent given
            f"/v1/realtime?model={openai_agent.public_id}", auth_headers(tenant_a.secret)
        )
        await receive(communicator)
        connection = scripted_provider.connections[0]
        connection.push(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": "item_1",
                "transcript": WORDS,
            }
        )
        await communicator.send_to(
            text_data='{"type": "conversation.item.create", "item": {"type": "message", '
            f'"role": "user", "content": [{{"type": "input_text", "text": "{WORDS}"}}]}}}}'
        )
        connection.speak("resp_1", "I cannot take card numbers.")
        await receive_until(communicator, "response.done")
        await communicator.disconnect()

    asyncio.run(scenario())
    assert handed and all(transcript == [] for transcript in handed)
    assert not TranscriptItem.objects.exists()
