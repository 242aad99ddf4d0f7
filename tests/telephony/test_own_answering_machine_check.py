"""Koe's own answering-machine check (agents.telephony.greeting) on an outbound call: a
person's short "Hello?" is a person; a greeting that runs on is a machine, and its end is
where the agent leaves its message; the carrier's verdict, if it comes first, wins."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import pytest
from channels.db import database_sync_to_async

from agents.telephony.greeting import GreetingCheck
from agents.telephony.models import PhoneCall
from calls.models import CallSession
from speech.g711 import encode_ulaw
from tests.conftest import TenantWorld
from tests.fakes.twilio import parse_twiml_stream
from tests.fakes.twilio_rest import FakeTwilioRest
from tests.realtime.doubles import ScriptedProvider
from tests.telephony.conftest import NUMBER, Line, voicemail_responder
from tests.telephony.test_outbound import CALLEE, callback, carrier, outbound_line, place  # noqa: F401
from tests.telephony.test_twilio_stream import Twilio, opened

pytestmark = pytest.mark.django_db(transaction=True)


def speech(seconds: float) -> bytes:
    """μ-law of a voice-like sound: a 200 Hz tone whose loudness wavers like syllables."""
    t = np.arange(int(8000 * seconds)) / 8000
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    return encode_ulaw((6000 * envelope * np.sin(2 * np.pi * 200 * t)).astype(np.int16))


def quiet(seconds: float) -> bytes:
    rng = np.random.default_rng(7)
    return encode_ulaw(rng.normal(0, 30, int(8000 * seconds)).astype(np.int16))  # line hiss


def frames(audio: bytes) -> list[str]:
    return [base64.b64encode(audio[i : i + 160]).decode() for i in range(0, len(audio), 160)]


def verdict(audio: bytes) -> tuple[str | None, float]:
    check = GreetingCheck()
    for payload in frames(audio):
        found = check.feed(payload)
        if found is not None:
            return found, check.elapsed
    return None, check.elapsed


@pytest.mark.parametrize(
    ("audio", "expected", "within"),
    [
        (quiet(0.3) + speech(0.7) + quiet(1.5), "human", 2.0),  # "Hello?"
        (speech(0.5) + quiet(0.3) + speech(0.6) + quiet(1.2), "human", 2.5),  # "Acme, Anna"
        (quiet(0.5) + speech(4.0) + quiet(1.5), "machine_end_silence", 5.5),  # a greeting
        (speech(1.5) + quiet(0.4) + speech(2.0) + quiet(1.0), "machine_end_silence", 5.0),
        (quiet(6.0), "unknown", 5.1),
        (speech(25.0), "machine_end_other", 20.1),
    ],
    ids=["hello", "two-words", "greeting", "greeting-with-pause", "silence", "endless"],
)
def test_the_first_seconds_tell_a_person_from_a_machine(
    audio: bytes, expected: str, within: float
) -> None:
    found, at = verdict(audio)
    assert found == expected
    assert at <= within


def test_what_is_not_base64_is_ignored() -> None:
    check = GreetingCheck()
    assert check.feed("not base64!") is None and check.elapsed == 0


def ring_out(world: TenantWorld, line: Line, carrier: FakeTwilioRest) -> tuple[PhoneCall, str]:  # noqa: F811
    place(world, agent=line.agent.public_id, to=CALLEE, **{"from": NUMBER})
    phone_call = PhoneCall.objects.get()
    token = parse_twiml_stream(carrier.calls[phone_call.carrier_call_id].twiml or "")[1]["token"]
    return phone_call, token


def test_a_greeting_heard_by_koe_gets_the_voicemail_message(
    tenant_a: TenantWorld,
    outbound_line: Line,  # noqa: F811
    carrier: FakeTwilioRest,  # noqa: F811
    scripted_provider: type[ScriptedProvider],
) -> None:
    scripted_provider.responder = voicemail_responder
    _, token = ring_out(tenant_a, outbound_line, carrier)

    async def scenario() -> bool:
        twilio = Twilio()
        await twilio.start(token)
        connection = await opened(scripted_provider)
        connection.push({"type": "response.created", "response": {"id": "resp_greeting"}})
        # The carrier says nothing; the callee's side plays a long greeting, then quiet.
        for payload in frames(speech(3.5) + quiet(1.0)):
            await twilio.send("media", media={"track": "inbound", "payload": payload})
        return await twilio.closed(timeout=10)

    assert asyncio.run(scenario())
    assert PhoneCall.objects.get().answered_by == "machine_end_silence"
    call = CallSession.objects.get()
    assert call.end_reason == "voicemail"
    said = [e for e in scripted_provider.connections[0].sent if e["type"] == "response.create"][-1]
    assert said["response"]["instructions"].endswith("Please call Acme Dental back.")


def test_a_person_is_left_to_talk_and_the_carriers_later_verdict_still_counts(
    tenant_a: TenantWorld,
    outbound_line: Line,  # noqa: F811
    carrier: FakeTwilioRest,  # noqa: F811
    scripted_provider: type[ScriptedProvider],
) -> None:
    scripted_provider.responder = voicemail_responder
    _, token = ring_out(tenant_a, outbound_line, carrier)

    async def scenario() -> str:
        twilio = Twilio()
        await twilio.start(token)
        await opened(scripted_provider)
        for payload in frames(speech(0.7) + quiet(1.2)):
            await twilio.send("media", media={"track": "inbound", "payload": payload})

        def answered_by() -> str:
            return PhoneCall.objects.get().answered_by

        for _ in range(200):
            if await database_sync_to_async(answered_by)():
                break
            await asyncio.sleep(0.02)
        verdict_seen = await database_sync_to_async(answered_by)()
        call_live = not await database_sync_to_async(
            CallSession.objects.filter(status="ended").exists
        )()
        assert call_live
        await twilio.send("stop", stop={})
        await twilio.closed()
        return verdict_seen

    assert asyncio.run(scenario()) == "human"
    assert CallSession.objects.get().end_reason == "client_closed"


def test_the_carriers_verdict_first_means_koes_is_not_acted_on(
    tenant_a: TenantWorld,
    outbound_line: Line,  # noqa: F811
    carrier: FakeTwilioRest,  # noqa: F811
    scripted_provider: type[ScriptedProvider],
) -> None:
    phone_call, token = ring_out(tenant_a, outbound_line, carrier)

    async def scenario() -> None:
        twilio = Twilio()
        await twilio.start(token)
        await opened(scripted_provider)
        amd = {"CallSid": phone_call.carrier_call_id, "AnsweredBy": "human"}
        await database_sync_to_async(callback)("/v1/telephony/twilio/amd", amd)
        for payload in frames(speech(3.5) + quiet(1.0)):
            await twilio.send("media", media={"track": "inbound", "payload": payload})
        await asyncio.sleep(0.2)
        await twilio.send("stop", stop={})
        await twilio.closed()

    asyncio.run(scenario())
    assert PhoneCall.objects.get().answered_by == "human"  # the carrier's, kept
    assert CallSession.objects.get().end_reason == "client_closed"
