"""Phone calls end to end: Koe under a real Daphne, rung and streamed to by the fake Twilio
(signed webhook, TwiML, Media Streams at real-time pace, marks echoed as audio plays),
with the built-in voice answering in μ-law."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from agents.models import Agent
from agents.telephony.models import CarrierAccount, PhoneConsent, PhoneNumber
from calls.models import CallSession, TranscriptRole
from dashboard.management.commands.seed_demo import seed_demo
from tests.fakes.twilio import MediaStream, downsample_24k_to_8k, pcm16_to_mulaw, ring
from tests.live import daphne_server
from tests.local.helpers import utterance
from tests.telephony.conftest import ACCOUNT_SID, AUTH_TOKEN, CALLER, NUMBER

pytestmark = pytest.mark.django_db(transaction=True)
# Twilio reaches Koe at its public address; a proxy forwards it to the Daphne under test.
PUBLIC = "https://voice.koe.example"


def caller_says(text: str) -> bytes:
    """What the caller says, as the phone network carries it: 8 kHz μ-law."""
    return pcm16_to_mulaw(downsample_24k_to_8k(utterance(text)))


def demo_line(consent: str = PhoneConsent.DISCLOSED) -> Agent:
    agent = Agent.objects.get(public_id=seed_demo()["agent_id"])
    account = CarrierAccount.objects.create(
        tenant=agent.tenant, name="Main", account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN
    )
    PhoneNumber.objects.create(
        tenant=agent.tenant, number=NUMBER, carrier_account=account, agent=agent, consent=consent
    )
    return agent


def wait_for_end() -> CallSession:
    deadline = time.monotonic() + 10
    while not CallSession.objects.filter(status="ended").exists():
        assert time.monotonic() < deadline, "the call was never recorded as ended"
        time.sleep(0.05)
    return CallSession.objects.get()


def test_a_caller_books_a_table_by_phone() -> None:
    demo_line()
    with daphne_server(KOE_LOCAL_WARM_UP="1", KOE_SITE_URL=PUBLIC) as base:

        async def call() -> MediaStream:
            answer = await ring(
                f"{base}/v1/telephony/twilio/voice",
                public_url=f"{PUBLIC}/v1/telephony/twilio/voice",
                auth_token=AUTH_TOKEN,
                account_sid=ACCOUNT_SID,
                from_number=CALLER,
                to_number=NUMBER,
            )
            assert answer.status_code == 200, answer.body
            assert answer.stream_url == "wss://voice.koe.example/v1/telephony/twilio/stream"
            local = answer.stream_url.replace("wss://voice.koe.example", base.replace("http", "ws"))
            stream = await MediaStream.open(
                local, answer.parameters, call_sid=answer.call_sid, account_sid=ACCOUNT_SID
            )
            # The disclosure and the greeting, heard to the end.
            await stream.wait_for_audio(2000, timeout=30)
            await stream.wait_until_quiet(1500, timeout=30)
            await stream.wait_for_playback(timeout=30)
            greeting_bytes = len(stream.played)
            await stream.send_audio(caller_says("I'd like a table for two at seven."))
            await stream.wait_for_audio(greeting_bytes // 8 + 1500, timeout=30)
            await stream.wait_until_quiet(2000, timeout=30)
            await stream.wait_for_playback(timeout=30)
            await stream.stop()
            return stream

        stream = asyncio.run(call())
        call_session = wait_for_end()  # before the server stops

    assert not stream.protocol_errors
    # Every mark came back after its audio played: the caller heard all of it.
    assert stream.received_marks and all(mark.echoed_at for mark in stream.received_marks)
    assert call_session.channel == "phone" and call_session.end_user_ref == CALLER
    assert call_session.end_reason == "client_closed"
    assert (call_session.consent_scope, call_session.consent_method)[1] == "disclosed"
    transcript = list(call_session.transcript.order_by("sequence"))
    said = [item.text for item in transcript if item.role == TranscriptRole.ASSISTANT]
    assert "Koe Bistro" in said[0]
    assert "Your table for 2 at 19:00 is booked" in said[-1]
    booked = [
        item for item in transcript if item.role == TranscriptRole.TOOL and item.tool_arguments
    ]
    assert [json.loads(item.tool_arguments) for item in booked] == [
        {"party_size": 2, "time": "19:00"}
    ]
    # The agent's voice came back as μ-law at 8 kHz: over a second and a half of it.
    assert len(stream.played) > 8 * 1500
