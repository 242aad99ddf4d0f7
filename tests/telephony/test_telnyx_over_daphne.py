"""Phone calls through Telnyx end to end: Koe under a real Daphne, its webhook signed and
posted by the fake Telnyx, the answer command received by the fake Telnyx API, and the
media stream played at real-time pace with the caller's frames arriving out of order, the
built-in voice answering in μ-law."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from agents.models import Agent
from agents.telephony.models import Carrier, CarrierAccount, PhoneConsent, PhoneNumber
from calls.models import CallSession, TranscriptRole
from dashboard.management.commands.seed_demo import seed_demo
from tests.fakes.telnyx import FakeTelnyxRest, MediaStream, TelnyxKeys, call_event, send_webhook
from tests.fakes.twilio import downsample_24k_to_8k, pcm16_to_mulaw
from tests.live import daphne_server
from tests.local.helpers import utterance
from tests.telephony.conftest import CALLER, NUMBER

pytestmark = pytest.mark.django_db(transaction=True)
# Telnyx reaches Koe at its public address; a proxy forwards it to the Daphne under test.
PUBLIC = "https://voice.koe.example"
API_KEY = "KEY0123456789ABCDEF_telnyx-e2e"
KEYS = TelnyxKeys.generate()


def caller_says(text: str) -> bytes:
    """What the caller says, as the phone network carries it: 8 kHz μ-law."""
    return pcm16_to_mulaw(downsample_24k_to_8k(utterance(text)))


def demo_line(consent: str = PhoneConsent.DISCLOSED) -> Agent:
    agent = Agent.objects.get(public_id=seed_demo()["agent_id"])
    account = CarrierAccount.objects.create(
        tenant=agent.tenant,
        name="Telnyx",
        carrier=Carrier.TELNYX,
        auth_token=API_KEY,
        webhook_public_key=KEYS.public_key,
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


def test_a_caller_books_a_table_through_telnyx() -> None:
    demo_line()
    with (
        FakeTelnyxRest(API_KEY) as telnyx_api,
        daphne_server(
            KOE_LOCAL_WARM_UP="1", KOE_SITE_URL=PUBLIC, KOE_TELNYX_API_URL=telnyx_api.base_url
        ) as base,
    ):
        call_control_id = telnyx_api.ring()

        async def call() -> MediaStream:
            event = call_event(
                "call.initiated",
                call_control_id=call_control_id,
                from_number=CALLER,
                to_number=NUMBER,
            )
            delivered = await send_webhook(f"{base}/v1/telephony/telnyx/webhook", event, KEYS)
            assert delivered.status_code == 200, delivered.body
            answer = await telnyx_api.wait_for_async("answer")
            assert answer.status == 200, answer
            assert answer.stream_url.startswith(
                "wss://voice.koe.example/v1/telephony/telnyx/stream?token=st_"
            )
            local = answer.stream_url.replace("wss://voice.koe.example", base.replace("http", "ws"))
            stream = await MediaStream.open_telnyx(
                local,
                call_control_id=call_control_id,
                from_number=CALLER,
                to_number=NUMBER,
                seed=7,
            )
            # The disclosure and the greeting, heard to the end.
            await stream.wait_for_audio(2000, timeout=30)
            await stream.wait_until_quiet(1500, timeout=30)
            await stream.wait_for_playback(timeout=30)
            greeting_bytes = len(stream.played)
            # Telnyx may deliver the caller's frames out of order: here within runs of 3.
            await stream.send_audio(caller_says("I'd like a table for two at seven."), reorder=3)
            await stream.wait_for_audio(greeting_bytes // 8 + 1500, timeout=30)
            await stream.wait_until_quiet(2000, timeout=30)
            await stream.wait_for_playback(timeout=30)
            await stream.stop()
            return stream

        stream = asyncio.run(call())
        call_session = wait_for_end()  # before the server stops

    assert stream.frames_out_of_order > 10  # the shuffle did shuffle
    assert not stream.protocol_errors, stream.protocol_errors[:5]
    # Every mark came back after its audio played: the caller heard all of it.
    assert stream.received_marks and all(mark.echoed_at for mark in stream.received_marks)
    assert answer_actions(telnyx_api) == ["answer"]  # the caller hung up: no hang-up sent
    assert call_session.channel == "phone" and call_session.end_user_ref == CALLER
    assert call_session.end_reason == "client_closed"
    assert call_session.consent_method == "disclosed"
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


def answer_actions(fake: FakeTelnyxRest) -> list[str]:
    return [request.action for request in fake.actions()]
