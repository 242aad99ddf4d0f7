"""Consent by key press on Twilio: the agent's consent text is read with <Gather>, the
key the caller presses decides what the call keeps, and the call then goes on. (Telnyx:
test_telnyx_keypad_consent.py.)"""

from __future__ import annotations

import asyncio
from typing import Any
from xml.etree import ElementTree

import pytest
from django.conf import settings
from django.test import Client

from agents.telephony.models import PhoneCall, PhoneConsent
from calls.models import CallSession
from tests.conftest import TenantWorld
from tests.fakes.twilio import new_sid, parse_twiml_stream, twilio_signature
from tests.realtime.doubles import ScriptedProvider
from tests.telephony.conftest import ACCOUNT_SID, AUTH_TOKEN, CALLER, NUMBER, make_line
from tests.telephony.test_twilio_stream import Twilio, opened

pytestmark = pytest.mark.django_db(transaction=True)
CONSENT_TEXT = "We keep a transcript of this call to serve you better."


def post(path: str, form: dict[str, str]) -> Any:
    signature = twilio_signature(AUTH_TOKEN, settings.KOE_SITE_URL + path, form)
    return Client().post(path, form, headers={"X-Twilio-Signature": signature})


def ring(call_sid: str) -> ElementTree.Element:
    form = {"AccountSid": ACCOUNT_SID, "CallSid": call_sid, "From": CALLER, "To": NUMBER,
            "Direction": "inbound"}  # fmt: skip
    return ElementTree.fromstring(post("/v1/telephony/twilio/voice", form).content)


def press(call_sid: str, digits: str) -> Any:
    return post("/v1/telephony/twilio/consent", {"CallSid": call_sid, "Digits": digits})


def keypad_line(world: TenantWorld, **agent_fields: Any) -> None:
    make_line(
        world,
        consent=PhoneConsent.DTMF,
        provider="openai",
        model="gpt-realtime",
        greeting="Hello.",
        consent_prompt=CONSENT_TEXT,
        **agent_fields,
    )


def connect_and_hang_up(token: str, scripted: type[ScriptedProvider]) -> None:
    async def scenario() -> None:
        twilio = Twilio()
        await twilio.start(token)
        await opened(scripted)
        await twilio.send("stop", stop={})
        await twilio.closed()

    asyncio.run(scenario())


def test_the_consent_text_is_read_and_pressing_1_keeps_the_transcript(
    tenant_a: TenantWorld, scripted_provider: type[ScriptedProvider]
) -> None:
    keypad_line(tenant_a)
    call_sid = new_sid("CA")
    gather = ring(call_sid).find("Gather")
    assert gather is not None and gather.get("numDigits") == "1"
    assert gather.get("action", "").endswith("/v1/telephony/twilio/consent")
    said = gather.findtext("Say") or ""
    assert said.startswith(CONSENT_TEXT) and "Press 1 to agree" in said

    answer = press(call_sid, "1")
    stream_url, parameters, _ = parse_twiml_stream(answer.content.decode())
    assert stream_url and parameters["token"]
    connect_and_hang_up(parameters["token"], scripted_provider)

    call = CallSession.objects.get()
    assert (call.consent_scope, call.consent_method) == ("transcript", "dtmf")
    assert call.consent_text == CONSENT_TEXT and call.consent_at is not None
    greeting = scripted_provider.connections[0].sent[1]["response"]["instructions"]
    assert CONSENT_TEXT not in greeting  # read once, by the prompt, not again


def test_pressing_another_key_or_none_keeps_metadata_only(
    tenant_a: TenantWorld, scripted_provider: type[ScriptedProvider]
) -> None:
    keypad_line(tenant_a)
    call_sid = new_sid("CA")
    ring(call_sid)
    token = parse_twiml_stream(press(call_sid, "").content.decode())[1]["token"]
    connect_and_hang_up(token, scripted_provider)
    call = CallSession.objects.get()
    assert (call.consent_scope, call.consent_method) == ("none", "dtmf")
    assert call.consent_at is None


def test_an_agent_that_needs_consent_hangs_up_on_a_refusal(tenant_a: TenantWorld) -> None:
    keypad_line(tenant_a, consent_required=True)
    call_sid = new_sid("CA")
    said = ring(call_sid).findtext("Gather/Say") or ""
    assert said.endswith("Press 1 to agree and continue.")
    answer = ElementTree.fromstring(press(call_sid, "2").content)
    assert [child.tag for child in answer] == ["Say", "Hangup"]
    assert not CallSession.objects.exists()


def test_the_answer_must_be_signed_and_the_old_token_is_void(tenant_a: TenantWorld) -> None:
    keypad_line(tenant_a)
    call_sid = new_sid("CA")
    ring(call_sid)
    forged = Client().post(
        "/v1/telephony/twilio/consent",
        {"CallSid": call_sid, "Digits": "1"},
        headers={"X-Twilio-Signature": "forged"},
    )
    assert forged.status_code == 403
    assert PhoneCall.objects.get().consent_given is None
