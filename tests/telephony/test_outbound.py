"""Calls Koe places through Twilio (the fake Calls API): placing, following their status,
answering machines, and handing a caller to a person."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.test import Client

from agents.telephony.models import PhoneCall
from calls.models import CallSession
from events.models import EventEndpoint, OutboundEvent
from tenancy.models import Tenant
from tests.conftest import TenantWorld
from tests.factories import ToolFactory
from tests.fakes.twilio import parse_twiml_stream, twilio_signature
from tests.fakes.twilio_rest import FakeTwilioRest, ScriptedError
from tests.realtime.doubles import ScriptedConnection, ScriptedProvider
from tests.realtime.helpers import eventually
from tests.telephony.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    NUMBER,
    Line,
    make_line,
    voicemail_responder,
)
from tests.telephony.test_twilio_stream import Twilio, opened

pytestmark = pytest.mark.django_db(transaction=True)
CALLEE = "+14155550177"


@pytest.fixture
def carrier(settings: Any) -> Iterator[FakeTwilioRest]:
    with FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN) as fake:
        settings.KOE_TWILIO_API_URL = fake.base_url
        yield fake


@pytest.fixture
def outbound_line(tenant_a: TenantWorld) -> Line:
    return make_line(
        tenant_a,
        provider="openai",
        model="gpt-realtime",
        voice="alloy",
        greeting="Hello, this is Acme Dental calling.",
        voicemail_action="leave_message",
        voicemail_message="Please call Acme Dental back.",
    )


def place(world: TenantWorld, **body: Any) -> Any:
    client = Client(headers={"Authorization": f"Bearer {world.secret}"})
    return client.post("/v1/calls", body, content_type="application/json")


def callback(path: str, form: dict[str, str], token: str = AUTH_TOKEN) -> Any:
    signature = twilio_signature(token, settings.KOE_SITE_URL + path, form)
    return Client().post(path, form, headers={"X-Twilio-Signature": signature})


def test_placing_a_call_asks_twilio_to_ring_with_the_stream_and_callbacks(
    tenant_a: TenantWorld, outbound_line: Line, carrier: FakeTwilioRest
) -> None:
    response = place(
        tenant_a,
        agent=outbound_line.agent.public_id,
        to=CALLEE,
        **{"from": NUMBER},
        metadata={"campaign": "recall"},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["direction"], body["call"]) == ("queued", "outbound", None)
    assert body["metadata"] == {"campaign": "recall"} and body["remote_number"] == CALLEE
    (request,) = carrier.requests
    assert request.auth == (ACCOUNT_SID, AUTH_TOKEN)
    form = request.form
    assert (form["To"], form["From"]) == (CALLEE, NUMBER)
    stream_url, parameters, _ = parse_twiml_stream(form["Twiml"])
    assert stream_url and stream_url.endswith("/v1/telephony/twilio/stream")
    assert parameters["token"].startswith("st_")
    assert form["StatusCallback"].endswith("/v1/telephony/twilio/status")
    assert request.form_lists["StatusCallbackEvent"] == [
        "initiated",
        "ringing",
        "answered",
        "completed",
    ]
    assert (form["MachineDetection"], form["AsyncAmd"]) == ("DetectMessageEnd", "true")
    phone_call = PhoneCall.objects.get()
    assert phone_call.carrier_call_id in carrier.calls


def test_a_call_that_cannot_be_placed_gets_a_clear_error(
    tenant_a: TenantWorld,
    tenant_b: TenantWorld,
    outbound_line: Line,
    carrier: FakeTwilioRest,
) -> None:
    agent = outbound_line.agent.public_id
    foreign = place(tenant_b, agent=agent, to=CALLEE, **{"from": NUMBER})
    assert foreign.status_code == 400
    assert set(foreign.json()["error"]["fields"]) == {"agent", "from"}
    bad_number = place(tenant_a, agent=agent, to="555-0177", **{"from": NUMBER})
    assert set(bad_number.json()["error"]["fields"]) == {"to"}

    carrier.fail_next(ScriptedError(400, 21211, "The 'To' number is not a valid phone number."))
    refused = place(tenant_a, agent=agent, to=CALLEE, **{"from": NUMBER})
    assert refused.status_code == 502
    assert refused.json()["error"]["code"] == "carrier_error"
    assert PhoneCall.objects.get().status == "failed"

    Tenant.objects.filter(pk=tenant_a.tenant.pk).update(max_concurrent_calls=0)
    busy = place(tenant_a, agent=agent, to=CALLEE, **{"from": NUMBER})
    assert busy.status_code == 429
    assert busy.json()["error"]["code"] == "concurrent_call_limit"
    assert len(carrier.requests) == 1  # only the refused one reached Twilio


def test_status_callbacks_move_the_call_forward_and_tell_the_tenant(
    tenant_a: TenantWorld, outbound_line: Line, carrier: FakeTwilioRest
) -> None:
    EventEndpoint.objects.create(tenant=tenant_a.tenant, url="https://127.0.0.1/koe")
    placed = place(tenant_a, agent=outbound_line.agent.public_id, to=CALLEE, **{"from": NUMBER})
    sid = PhoneCall.objects.get().carrier_call_id
    path = "/v1/telephony/twilio/status"
    for status in ("ringing", "in-progress", "ringing"):
        assert callback(path, {"CallSid": sid, "CallStatus": status}).status_code == 204
    assert PhoneCall.objects.get().status == "in-progress"  # a late "ringing" changes nothing
    forged = callback(path, {"CallSid": sid, "CallStatus": "completed"}, token="wrong")
    assert forged.status_code == 403
    callback(path, {"CallSid": sid, "CallStatus": "completed", "CallDuration": "42"})

    followed = Client(headers={"Authorization": f"Bearer {tenant_a.secret}"}).get(
        f"/v1/calls/{placed.json()['id']}"
    )
    assert followed.json()["status"] == "completed"
    assert followed.json()["duration_seconds"] == 42
    statuses = [
        event.payload["status"]
        for event in OutboundEvent.objects.filter(type="phone_call.status").order_by("pk")
    ]
    assert statuses == ["ringing", "in-progress", "completed"]


def test_no_answer_is_recorded_and_opens_no_call(
    tenant_a: TenantWorld, outbound_line: Line, carrier: FakeTwilioRest
) -> None:
    place(tenant_a, agent=outbound_line.agent.public_id, to=CALLEE, **{"from": NUMBER})
    sid = PhoneCall.objects.get().carrier_call_id
    callback("/v1/telephony/twilio/status", {"CallSid": sid, "CallStatus": "no-answer"})
    assert PhoneCall.objects.get().status == "no-answer"
    assert not CallSession.objects.exists()


def test_an_answering_machine_gets_the_voicemail_message_then_the_call_ends(
    tenant_a: TenantWorld,
    outbound_line: Line,
    carrier: FakeTwilioRest,
    scripted_provider: type[ScriptedProvider],
) -> None:
    scripted_provider.responder = voicemail_responder
    place(tenant_a, agent=outbound_line.agent.public_id, to=CALLEE, **{"from": NUMBER})
    phone_call = PhoneCall.objects.get()
    token = parse_twiml_stream(carrier.calls[phone_call.carrier_call_id].twiml or "")[1]["token"]

    async def scenario() -> bool:
        twilio = Twilio()
        await twilio.start(token)
        connection = await opened(scripted_provider)
        # The machine answered: the greeting is playing to it when detection reports.
        connection.push({"type": "response.created", "response": {"id": "resp_greeting"}})
        amd = {"CallSid": phone_call.carrier_call_id, "AnsweredBy": "machine_end_beep"}
        response = await database_sync_to_async(callback)("/v1/telephony/twilio/amd", amd)
        assert response.status_code == 204
        return await twilio.closed(timeout=10)

    assert asyncio.run(scenario())
    call = CallSession.objects.get()
    assert (call.end_reason, call.end_user_ref, call.channel) == ("voicemail", CALLEE, "phone")
    assert PhoneCall.objects.get().answered_by == "machine_end_beep"
    said = [e for e in scripted_provider.connections[0].sent if e["type"] == "response.create"][-1]
    assert said["response"]["instructions"].endswith("Please call Acme Dental back.")


def test_transfer_to_human_moves_the_caller_to_the_agents_transfer_number(
    tenant_a: TenantWorld, carrier: FakeTwilioRest, scripted_provider: type[ScriptedProvider]
) -> None:
    transfer_tool = ToolFactory(
        tenant=tenant_a.tenant,
        name="transfer_to_human",
        kind="builtin",
        builtin_name="transfer_to_human",
        webhook_url="",
        parameters={"type": "object", "properties": {"reason": {"type": "string"}}},
    )
    make_line(
        tenant_a,
        provider="openai",
        model="gpt-realtime",
        voice="alloy",
        transfer_number="+14155550123",
        greeting="Hello.",
        tools=[transfer_tool],
    )
    # An inbound call, registered at the fake so Koe can redirect it.
    form = {"AccountSid": ACCOUNT_SID, "CallSid": "CA" + "7" * 32, "From": CALLER_NUMBER,
            "To": NUMBER, "Direction": "inbound"}  # fmt: skip
    carrier.register_call(form["CallSid"], to_number=NUMBER, from_number=CALLER_NUMBER)
    answer = callback("/v1/telephony/twilio/voice", form)
    token = parse_twiml_stream(answer.content.decode())[1]["token"]

    def responder(event: dict[str, Any], connection: ScriptedConnection) -> None:
        if event["type"] == "response.create" and any(
            e["type"] == "conversation.item.create" for e in connection.sent
        ):
            connection.speak("resp_transfer", "Putting you through now.", seconds=0.2)

    scripted_provider.responder = responder

    async def scenario() -> bool:
        twilio = Twilio()
        await twilio.start(token)
        connection = await opened(scripted_provider)
        connection.call_function("transfer_to_human", json.dumps({"reason": "billing"}))
        await eventually(lambda: bool(carrier.calls[form["CallSid"]].updates), timeout=10)
        # Twilio leaves the stream to dial the person.
        await twilio.send("stop", stop={"accountSid": ACCOUNT_SID, "callSid": form["CallSid"]})
        closed = await twilio.closed()
        ended = database_sync_to_async(CallSession.objects.filter(status="ended").exists)
        deadline = asyncio.get_running_loop().time() + 5
        while not await ended() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        return closed

    assert asyncio.run(scenario())
    update = carrier.calls[form["CallSid"]].updates[-1]
    assert "<Dial>+14155550123</Dial>" in update["Twiml"]
    call = CallSession.objects.get()
    assert call.end_reason == "transferred"
    assert call.end_detail == "Transferred to +14155550123."
    phone_call = PhoneCall.objects.get()
    assert phone_call.transfer_to == "+14155550123" and phone_call.transferred_at is not None


CALLER_NUMBER = "+14155550199"
