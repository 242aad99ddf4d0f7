"""Calls Koe places through Telnyx (the fake REST API and signed Call Control webhooks):
placing, following their status, answering machines, and handing a caller to a person."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from agents.telephony import telnyx
from agents.telephony.models import CarrierAccount, PhoneCall
from calls.models import CallSession
from events.models import EventEndpoint, OutboundEvent
from tenancy.models import hash_secret
from tests.conftest import TenantWorld
from tests.factories import ToolFactory
from tests.fakes.telnyx import FakeTelnyxRest, TelnyxKeys, call_event
from tests.realtime.doubles import ScriptedConnection, ScriptedProvider
from tests.telephony.conftest import NUMBER, Line, voicemail_responder
from tests.telephony.telnyx_line import API_KEY, KEYS_A, KEYS_B, make_telnyx_line, post_event
from tests.telephony.test_telnyx_stream import Telnyx, answered, opened

pytestmark = pytest.mark.django_db(transaction=True)
CALLEE = "+14155550177"
CONNECTION_ID = "1684641123236054244"


@pytest.fixture
def outbound_line(tenant_a: TenantWorld) -> Line:
    line = make_telnyx_line(
        tenant_a,
        provider="openai",
        model="gpt-realtime",
        voice="alloy",
        greeting="Hello, this is Acme Dental calling.",
        voicemail_action="leave_message",
        voicemail_message="Please call Acme Dental back.",
    )
    CarrierAccount.objects.filter(pk=line.account.pk).update(connection_id=CONNECTION_ID)
    return line


def place(world: TenantWorld, **body: Any) -> Any:
    client = Client(headers={"Authorization": f"Bearer {world.secret}"})
    return client.post("/v1/calls", body, content_type="application/json")


def progress(
    event_type: str, call_control_id: str, keys: TelnyxKeys = KEYS_A, **payload: Any
) -> Any:
    """A signed event of the outgoing call ``call_control_id``, as Telnyx posts it."""
    event = call_event(
        event_type,
        call_control_id=call_control_id,
        from_number=NUMBER,
        to_number=CALLEE,
        direction="outgoing",
        extra=payload,
    )
    return post_event(event, keys=keys)


def stream_token(stream_url: str) -> str:
    return parse_qs(urlsplit(stream_url).query)["token"][0]


def test_placing_a_call_dials_telnyx_with_the_stream_and_machine_detection(
    tenant_a: TenantWorld, outbound_line: Line, telnyx_api: FakeTelnyxRest
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
    (dial,) = telnyx_api.actions("dial")
    assert dial.status == 200 and dial.headers["authorization"] == f"Bearer {API_KEY}"
    sent = dial.body
    assert (sent["connection_id"], sent["to"], sent["from"]) == (CONNECTION_ID, CALLEE, NUMBER)
    assert (
        sent["stream_url"].startswith("ws") and "/v1/telephony/telnyx/stream?" in sent["stream_url"]
    )
    assert (sent["stream_track"], sent["stream_bidirectional_mode"]) == ("inbound_track", "rtp")
    assert sent["stream_bidirectional_codec"] == "PCMU"
    # A message to leave: detection waits for the end of the greeting.
    assert sent["answering_machine_detection"] == "greeting_end"
    assert sent["webhook_url"].endswith("/v1/telephony/telnyx/webhook")
    phone_call = PhoneCall.objects.get()
    assert base64.b64decode(sent["client_state"]).decode() == phone_call.public_id
    assert phone_call.carrier == "telnyx" and phone_call.carrier_call_id == dial.call_control_id
    assert phone_call.stream_token_hash == hash_secret(stream_token(sent["stream_url"]))

    # An agent that hangs up on machines only needs to know it is one.
    outbound_line.agent.voicemail_action = "hang_up"
    outbound_line.agent.save()
    place(tenant_a, agent=outbound_line.agent.public_id, to=CALLEE, **{"from": NUMBER})
    assert telnyx_api.actions("dial")[-1].body["answering_machine_detection"] == "detect"


def test_a_call_that_cannot_be_placed_gets_a_clear_error(
    tenant_a: TenantWorld, outbound_line: Line, telnyx_api: FakeTelnyxRest
) -> None:
    agent = outbound_line.agent.public_id
    telnyx_api.fail_next(422, "10015", "Invalid parameter", "to is not a valid number")
    refused = place(tenant_a, agent=agent, to=CALLEE, **{"from": NUMBER})
    assert refused.status_code == 502
    assert refused.json()["error"]["code"] == "carrier_error"
    assert "to is not a valid number" in refused.json()["error"]["message"]
    assert PhoneCall.objects.get().status == "failed"

    CarrierAccount.objects.filter(pk=outbound_line.account.pk).update(connection_id="")
    missing = place(tenant_a, agent=agent, to=CALLEE, **{"from": NUMBER})
    assert missing.status_code == 400
    assert set(missing.json()["error"]["fields"]) == {"from"}
    assert "connection_id" in missing.json()["error"]["fields"]["from"][0]
    assert len(telnyx_api.actions("dial")) == 1


def test_progress_events_move_the_call_forward_and_tell_the_tenant(
    tenant_a: TenantWorld, outbound_line: Line, telnyx_api: FakeTelnyxRest
) -> None:
    EventEndpoint.objects.create(tenant=tenant_a.tenant, url="https://127.0.0.1/koe")
    placed = place(tenant_a, agent=outbound_line.agent.public_id, to=CALLEE, **{"from": NUMBER})
    call_control_id = PhoneCall.objects.get().carrier_call_id
    for event_type in ("call.initiated", "call.answered", "call.initiated"):
        response = progress(event_type, call_control_id)
        assert response.status_code == 200 and response.json() == {"status": "recorded"}
    assert PhoneCall.objects.get().status == "in-progress"  # a late initiated changes nothing
    forged = progress("call.hangup", call_control_id, hangup_cause="normal_clearing", keys=KEYS_B)
    assert forged.status_code == 403
    progress(
        "call.hangup",
        call_control_id,
        hangup_cause="normal_clearing",
        start_time="2026-01-23T18:10:02.574Z",
        end_time="2026-01-23T18:10:44.574Z",
    )

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


@pytest.mark.parametrize(
    ("cause", "status"),
    [("timeout", "no-answer"), ("no_answer", "no-answer"), ("user_busy", "busy"),
     ("originator_cancel", "canceled"), ("not_found", "failed")],
)  # fmt: skip
def test_an_unanswered_call_ends_as_its_hangup_cause_says_and_opens_no_call(
    tenant_a: TenantWorld,
    outbound_line: Line,
    telnyx_api: FakeTelnyxRest,
    cause: str,
    status: str,
) -> None:
    place(tenant_a, agent=outbound_line.agent.public_id, to=CALLEE, **{"from": NUMBER})
    call_control_id = PhoneCall.objects.get().carrier_call_id
    progress("call.initiated", call_control_id)
    progress("call.hangup", call_control_id, hangup_cause=cause)
    assert PhoneCall.objects.get().status == status
    assert not CallSession.objects.exists()


def test_an_event_before_dials_answer_finds_its_call_by_client_state(
    tenant_a: TenantWorld, outbound_line: Line, telnyx_api: FakeTelnyxRest
) -> None:
    place(tenant_a, agent=outbound_line.agent.public_id, to=CALLEE, **{"from": NUMBER})
    phone_call = PhoneCall.objects.get()
    # As if Dial's answer had not come back yet.
    PhoneCall.objects.filter(pk=phone_call.pk).update(carrier_call_id="pending:abc")
    state = base64.b64encode(phone_call.public_id.encode()).decode()
    assert progress("call.initiated", "v3:early", client_state=state).json() == {
        "status": "recorded"
    }
    phone_call.refresh_from_db()
    assert (phone_call.carrier_call_id, phone_call.status) == ("v3:early", "ringing")


def test_an_answering_machine_gets_the_voicemail_message_after_its_greeting(
    tenant_a: TenantWorld,
    outbound_line: Line,
    telnyx_api: FakeTelnyxRest,
    scripted_provider: type[ScriptedProvider],
) -> None:
    scripted_provider.responder = voicemail_responder
    place(tenant_a, agent=outbound_line.agent.public_id, to=CALLEE, **{"from": NUMBER})
    phone_call = PhoneCall.objects.get()
    call_control_id = phone_call.carrier_call_id
    token = stream_token(telnyx_api.actions("dial")[0].stream_url)
    telnyx_api.answer_call(call_control_id)

    async def scenario() -> bool:
        peer = Telnyx(token)
        await peer.start(call_control_id)
        connection = await opened(scripted_provider)
        connection.push({"type": "response.created", "response": {"id": "resp_greeting"}})
        send = database_sync_to_async(progress)
        # A machine: the message waits for the end of its greeting.
        detected = await send("call.machine.detection.ended", call_control_id, result="machine")
        assert detected.status_code == 200
        assert not any(e["type"] == "response.cancel" for e in connection.sent)
        await send("call.machine.greeting.ended", call_control_id, result="beep_detected")
        while True:
            output = await peer.socket.receive_output(timeout=10)
            if output["type"] != "websocket.send":
                return bool(output["type"] == "websocket.close")

    assert asyncio.run(scenario())
    call = CallSession.objects.get()
    assert (call.end_reason, call.end_user_ref, call.channel) == ("voicemail", CALLEE, "phone")
    assert PhoneCall.objects.get().answered_by == "machine_end_beep"
    said = [e for e in scripted_provider.connections[0].sent if e["type"] == "response.create"][-1]
    assert said["response"]["instructions"].endswith("Please call Acme Dental back.")
    # Koe ended the call: it hangs up at Telnyx.
    assert telnyx_api.wait_for("hangup").call_control_id == call_control_id


def test_transfer_to_human_sends_the_transfer_command_and_does_not_hang_up(
    tenant_a: TenantWorld, telnyx_api: FakeTelnyxRest, scripted_provider: type[ScriptedProvider]
) -> None:
    transfer_tool = ToolFactory(
        tenant=tenant_a.tenant,
        name="transfer_to_human",
        kind="builtin",
        builtin_name="transfer_to_human",
        webhook_url="",
        parameters={"type": "object", "properties": {"reason": {"type": "string"}}},
    )
    make_telnyx_line(
        tenant_a,
        provider="openai",
        model="gpt-realtime",
        voice="alloy",
        transfer_number="+14155550123",
        greeting="Hello.",
        tools=[transfer_tool],
    )

    def responder(event: dict[str, Any], connection: ScriptedConnection) -> None:
        if event["type"] == "response.create" and any(
            e["type"] == "conversation.item.create" for e in connection.sent
        ):
            connection.speak("resp_transfer", "Putting you through now.", seconds=0.2)

    scripted_provider.responder = responder

    async def scenario() -> str:
        call_control_id, token = await database_sync_to_async(answered)(telnyx_api)
        peer = Telnyx(token)
        await peer.start(call_control_id)
        connection = await opened(scripted_provider)
        connection.call_function("transfer_to_human", json.dumps({"reason": "billing"}))
        await telnyx_api.wait_for_async("transfer")
        # Telnyx bridges the caller to the person; the stream goes away.
        await peer.socket.disconnect()
        ended = database_sync_to_async(CallSession.objects.filter(status="ended").exists)
        deadline = asyncio.get_running_loop().time() + 5
        while not await ended() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        return call_control_id

    call_control_id = asyncio.run(scenario())
    telnyx.commands.wait()
    transfer = telnyx_api.wait_for("transfer")
    assert (transfer.call_control_id, transfer.status) == (call_control_id, 200)
    assert transfer.body["to"] == "+14155550123"
    assert transfer.headers["authorization"] == f"Bearer {API_KEY}"
    assert telnyx_api.calls[call_control_id].transferred_to == "+14155550123"
    assert telnyx_api.actions("hangup") == []  # the caller is the person's now
    phone_call = PhoneCall.objects.get()
    assert phone_call.transfer_to == "+14155550123" and phone_call.transferred_at is not None
    call = CallSession.objects.get()
    assert (call.end_reason, call.end_detail) == ("transferred", "Transferred to +14155550123.")
