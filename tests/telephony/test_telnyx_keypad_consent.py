"""Consent by key press on Telnyx: the call is answered without its stream, the agent's
consent text is read with gather_using_speak once Telnyx says it is answered, and the key
in call.gather.ended decides what the call keeps; streaming_start then opens the call,
or the call is hung up when the agent takes calls only with consent."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from agents.telephony import telnyx
from agents.telephony.models import PhoneCall, PhoneConsent
from calls.models import CallSession
from tests.conftest import TenantWorld
from tests.fakes.telnyx import FakeTelnyxRest, call_event
from tests.realtime.doubles import ScriptedProvider
from tests.telephony.conftest import CALLER, NUMBER
from tests.telephony.telnyx_line import KEYS_B, make_telnyx_line, post_event, ring
from tests.telephony.test_telnyx_stream import Telnyx, opened

pytestmark = pytest.mark.django_db(transaction=True)
CONSENT_TEXT = "We keep a transcript of this call to serve you better."


def keypad_line(world: TenantWorld, **agent_fields: Any) -> None:
    make_telnyx_line(
        world,
        consent=PhoneConsent.DTMF,
        provider="openai",
        model="gpt-realtime",
        greeting="Hello.",
        consent_prompt=CONSENT_TEXT,
        **agent_fields,
    )


def event(kind: str, call_control_id: str, **payload: Any) -> Any:
    return post_event(
        call_event(
            kind,
            call_control_id=call_control_id,
            from_number=CALLER,
            to_number=NUMBER,
            state="answered",
            extra=payload,
        )
    )


def answered_and_asked(fake: FakeTelnyxRest) -> tuple[str, dict[str, Any]]:
    """A call rings and is answered without a stream; once answered, the text is read."""
    call_control_id, rung = ring(call_control_id=fake.ring())
    assert rung.json() == {"status": "answered"}
    answer = fake.wait_for("answer")
    assert answer.status == 200 and "stream_url" not in answer.body
    assert event("call.answered", call_control_id).json() == {"status": "gathering"}
    gather = fake.wait_for("gather_using_speak")
    assert gather.status == 200, gather.body  # the fake checked it as Telnyx would
    return call_control_id, gather.body


def stream_token(fake: FakeTelnyxRest) -> str:
    start = fake.wait_for("streaming_start")
    assert start.status == 200, start.body
    assert start.body["stream_bidirectional_mode"] == "rtp"
    return parse_qs(urlsplit(start.body["stream_url"]).query)["token"][0]


def open_stream(token: str, call_control_id: str, scripted: type[ScriptedProvider]) -> None:
    """Telnyx's stream connects with the token; the call opens, then the caller hangs up."""

    async def scenario() -> None:
        stream = Telnyx(token)
        await stream.start(call_control_id)
        await opened(scripted)
        await stream.send("stop", None, stop={"call_control_id": call_control_id})
        await stream.closed()

    asyncio.run(scenario())


def test_the_consent_text_is_read_and_pressing_1_keeps_the_transcript(
    tenant_a: TenantWorld, telnyx_api: FakeTelnyxRest, scripted_provider: type[ScriptedProvider]
) -> None:
    keypad_line(tenant_a)
    call_control_id, gather = answered_and_asked(telnyx_api)
    assert gather["payload"].startswith(CONSENT_TEXT)
    assert "Press 1 to agree" in gather["payload"]
    assert (gather["minimum_digits"], gather["maximum_digits"]) == (1, 1)

    pressed = event("call.gather.ended", call_control_id, digits="1", status="valid")
    assert pressed.json() == {"status": "streaming"}
    open_stream(stream_token(telnyx_api), call_control_id, scripted_provider)

    call = CallSession.objects.get()
    assert (call.consent_scope, call.consent_method) == ("transcript", "dtmf")
    assert call.consent_text == CONSENT_TEXT and call.consent_at is not None


@pytest.mark.parametrize(("digits", "status"), [("2", "valid"), ("", "timeout")])
def test_another_key_or_none_keeps_metadata_only(
    digits: str,
    status: str,
    tenant_a: TenantWorld,
    telnyx_api: FakeTelnyxRest,
    scripted_provider: type[ScriptedProvider],
) -> None:
    keypad_line(tenant_a)
    call_control_id, _ = answered_and_asked(telnyx_api)
    event("call.gather.ended", call_control_id, digits=digits, status=status)
    open_stream(stream_token(telnyx_api), call_control_id, scripted_provider)
    call = CallSession.objects.get()
    assert (call.consent_scope, call.consent_method) == ("none", "dtmf")


def test_an_agent_that_needs_consent_hangs_up_on_a_refusal(
    tenant_a: TenantWorld, telnyx_api: FakeTelnyxRest
) -> None:
    keypad_line(tenant_a, consent_required=True)
    call_control_id, gather = answered_and_asked(telnyx_api)
    assert gather["payload"].endswith("Press 1 to agree and continue.")
    refused = event("call.gather.ended", call_control_id, digits="2", status="valid")
    assert refused.json() == {"status": "declined"}
    assert telnyx_api.wait_for("hangup").status == 200
    assert not telnyx_api.actions("streaming_start")
    assert not CallSession.objects.exists()


def test_a_repeated_or_forged_answer_changes_nothing(
    tenant_a: TenantWorld, telnyx_api: FakeTelnyxRest
) -> None:
    keypad_line(tenant_a)
    call_control_id, _ = answered_and_asked(telnyx_api)
    forged = post_event(
        call_event(
            "call.gather.ended",
            call_control_id=call_control_id,
            from_number=CALLER,
            to_number=NUMBER,
            extra={"digits": "1", "status": "valid"},
        ),
        keys=KEYS_B,  # another account's key
    )
    assert forged.status_code == 403
    assert PhoneCall.objects.get().consent_given is None
    event("call.gather.ended", call_control_id, digits="2", status="valid")
    again = event("call.gather.ended", call_control_id, digits="1", status="valid")
    assert again.json() == {"status": "duplicate"}
    assert PhoneCall.objects.get().consent_given is False
    telnyx.commands.wait()
    assert len(telnyx_api.actions("streaming_start")) == 1
