"""Twilio's media stream as a call transport, driven message by message with a scripted
provider: the call it opens, μ-law both ways, marks and barge-in, key presses, hang-up."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import orjson
import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from agents.realtime.errors import CLOSE_TRY_AGAIN
from agents.telephony import stream as phone_stream
from agents.telephony.models import PhoneCall, PhoneConsent, PhoneNumber
from calls.load import LOAD
from calls.models import CallSession
from koe.asgi import application
from tests.conftest import TenantWorld
from tests.fakes.twilio import new_sid, parse_twiml_stream, twilio_signature
from tests.realtime.doubles import ScriptedConnection, ScriptedProvider
from tests.realtime.helpers import eventually
from tests.telephony.conftest import ACCOUNT_SID, AUTH_TOKEN, CALLER, NUMBER, Line, make_line

pytestmark = pytest.mark.django_db(transaction=True)
STREAM = "/v1/telephony/twilio/stream"
STREAM_SID = "MZ" + "5" * 32


@pytest.fixture
def phone_line(tenant_a: TenantWorld) -> Line:
    return make_line(
        tenant_a, provider="openai", model="gpt-realtime", voice="alloy", greeting="Hello."
    )


def stream_token() -> str:
    form = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": new_sid("CA"),
        "Direction": "inbound",
        "From": CALLER,
        "To": NUMBER,
    }
    path = "/v1/telephony/twilio/voice"
    signature = twilio_signature(AUTH_TOKEN, settings.KOE_SITE_URL + path, form)
    response = Client().post(path, form, headers={"X-Twilio-Signature": signature})
    return parse_twiml_stream(response.content.decode())[1]["token"]


class Twilio:
    """Twilio's side of one stream, message by message (tests/fakes/twilio.py has the
    real-time one)."""

    def __init__(self) -> None:
        self.socket = WebsocketCommunicator(application, STREAM)
        self.sequence = 0

    async def send(self, event: str, **fields: Any) -> None:
        self.sequence += 1
        message = {"event": event, "sequenceNumber": str(self.sequence), **fields}
        if event != "connected":
            message["streamSid"] = STREAM_SID
        await self.socket.send_to(text_data=orjson.dumps(message).decode())

    async def start(self, token: str) -> None:
        connected, _ = await self.socket.connect()
        assert connected
        await self.send("connected", protocol="Call", version="1.0.0")
        await self.send(
            "start",
            start={
                "streamSid": STREAM_SID,
                "accountSid": ACCOUNT_SID,
                "callSid": new_sid("CA"),
                "tracks": ["inbound"],
                "customParameters": {"token": token},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        )

    async def receive(self, timeout: float = 5) -> dict[str, Any]:
        return orjson.loads(await self.socket.receive_from(timeout=timeout))  # type: ignore[no-any-return]

    async def closed(self, timeout: float = 5) -> bool:
        """Whether the stream is closed next, after any messages still on their way."""
        while True:
            output = await self.socket.receive_output(timeout=timeout)
            if output["type"] != "websocket.send":
                return output["type"] == "websocket.close"


async def opened(scripted: type[ScriptedProvider]) -> ScriptedConnection:
    await eventually(lambda: bool(scripted.connections))
    connection = scripted.connections[0]
    await eventually(lambda: len(connection.sent) >= 2)  # session.update, the greeting
    return connection


def audio_delta(item_id: str, audio: bytes) -> dict[str, Any]:
    return {
        "type": "response.output_audio.delta",
        "response_id": "resp_1",
        "item_id": item_id,
        "output_index": 0,
        "content_index": 0,
        "delta": base64.b64encode(audio).decode(),
    }


def test_the_call_opens_with_mulaw_both_ways_and_the_callers_number(
    phone_line: Line, scripted_provider: type[ScriptedProvider]
) -> None:
    async def scenario() -> ScriptedConnection:
        twilio = Twilio()
        await twilio.start(await database_sync_to_async(stream_token)())
        connection = await opened(scripted_provider)
        caller_audio = base64.b64encode(bytes([0x7F] * 160)).decode()
        await twilio.send("media", media={"track": "inbound", "chunk": "1", "timestamp": "20",
                                          "payload": caller_audio})  # fmt: skip
        await eventually(lambda: len(connection.sent) >= 3)
        await twilio.send("stop", stop={"accountSid": ACCOUNT_SID, "callSid": "CA"})
        assert await twilio.closed()
        return connection

    connection = asyncio.run(scenario())
    session = connection.sent[0]["session"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert connection.sent[1]["type"] == "response.create"  # the greeting
    assert connection.sent[2] == {
        "type": "input_audio_buffer.append",
        "audio": base64.b64encode(bytes([0x7F] * 160)).decode(),
    }
    call = CallSession.objects.get()
    assert call.channel == "phone" and call.end_user_ref == CALLER
    assert call.end_reason == "client_closed" and call.end_detail == "The caller hung up."
    phone_call = PhoneCall.objects.get()
    assert phone_call.call == call and phone_call.remote_number == ""


def test_agent_audio_goes_out_as_media_with_a_mark_after_each_piece(
    phone_line: Line, scripted_provider: type[ScriptedProvider]
) -> None:
    async def scenario() -> list[dict[str, Any]]:
        twilio = Twilio()
        await twilio.start(await database_sync_to_async(stream_token)())
        connection = await opened(scripted_provider)
        connection.push(audio_delta("item_a", b"\x01" * 1600))
        received = [await twilio.receive(), await twilio.receive()]
        await twilio.socket.disconnect()
        return received

    media, mark = asyncio.run(scenario())
    assert media == {
        "event": "media",
        "streamSid": STREAM_SID,
        "media": {"payload": base64.b64encode(b"\x01" * 1600).decode()},
    }
    assert mark["event"] == "mark" and mark["streamSid"] == STREAM_SID
    assert mark["mark"]["name"]


def test_a_barge_in_clears_twilio_and_truncates_at_what_the_marks_say_was_heard(
    phone_line: Line, scripted_provider: type[ScriptedProvider]
) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], ScriptedConnection]:
        twilio = Twilio()
        await twilio.start(await database_sync_to_async(stream_token)())
        connection = await opened(scripted_provider)
        for _ in range(3):  # three pieces of 200 ms
            connection.push(audio_delta("item_a", b"\x01" * 1600))
        out = [await twilio.receive() for _ in range(6)]
        marks = [message["mark"]["name"] for message in out if message["event"] == "mark"]
        # The first piece played (Twilio echoed its mark), then the caller spoke.
        await twilio.send("mark", mark={"name": marks[0]})
        await asyncio.sleep(0.05)
        connection.push({"type": "input_audio_buffer.speech_started", "audio_start_ms": 900,
                         "item_id": "item_caller"})  # fmt: skip
        out.append(await twilio.receive())
        await eventually(
            lambda: any(e["type"] == "conversation.item.truncate" for e in connection.sent)
        )
        # Twilio echoes the marks a clear dropped: they change nothing.
        await twilio.send("mark", mark={"name": marks[2]})
        await twilio.socket.disconnect()
        return out, connection

    out, connection = asyncio.run(scenario())
    assert out[-1] == {"event": "clear", "streamSid": STREAM_SID}
    truncate = next(e for e in connection.sent if e["type"] == "conversation.item.truncate")
    assert truncate == {
        "type": "conversation.item.truncate",
        "item_id": "item_a",
        "content_index": 0,
        "audio_end_ms": truncate["audio_end_ms"],
    }
    # What was heard, not the 600 ms sent: the echoed 200 ms, and the 50 ms that played on
    # since the echo (never past the next mark, at 400 ms).
    assert 240 <= truncate["audio_end_ms"] < 400


def test_speech_with_nothing_playing_sends_no_clear(
    phone_line: Line, scripted_provider: type[ScriptedProvider]
) -> None:
    async def scenario() -> ScriptedConnection:
        twilio = Twilio()
        await twilio.start(await database_sync_to_async(stream_token)())
        connection = await opened(scripted_provider)
        connection.push(audio_delta("item_a", b"\x01" * 800))
        marks = [await twilio.receive(), await twilio.receive()]
        await twilio.send("mark", mark={"name": marks[1]["mark"]["name"]})  # all played
        await asyncio.sleep(0.05)
        connection.push({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0,
                         "item_id": "item_caller"})  # fmt: skip
        assert await twilio.socket.receive_nothing(timeout=0.3)
        await twilio.socket.disconnect()
        return connection

    connection = asyncio.run(scenario())
    assert not [e for e in connection.sent if e["type"] == "conversation.item.truncate"]


def test_key_presses_reach_the_agent_as_one_message_once_the_caller_pauses(
    phone_line: Line, scripted_provider: type[ScriptedProvider], monkeypatch: Any
) -> None:
    monkeypatch.setattr(phone_stream, "DTMF_PAUSE_SECONDS", 0.2)

    async def scenario() -> ScriptedConnection:
        twilio = Twilio()
        await twilio.start(await database_sync_to_async(stream_token)())
        connection = await opened(scripted_provider)
        connection.push({"type": "response.created", "response": {"id": "resp_greeting"}})
        connection.push({"type": "response.done", "response": {"id": "resp_greeting",
                         "status": "completed", "output": []}})  # fmt: skip
        for digit in "42":
            await twilio.send("dtmf", dtmf={"track": "inbound_track", "digit": digit})
        await twilio.send("dtmf", dtmf={"track": "inbound_track", "digit": "not a key"})
        await eventually(lambda: any(e["type"] == "response.create" for e in connection.sent[2:]))
        await twilio.socket.disconnect()
        return connection

    connection = asyncio.run(scenario())
    created = [e for e in connection.sent if e["type"] == "conversation.item.create"]
    assert len(created) == 1
    assert created[0]["item"]["content"][0]["text"] == (
        "[The caller pressed 4 2 on the phone keypad.]"
    )
    assert connection.sent[-1]["type"] == "response.create"
    typed = CallSession.objects.get()
    assert typed.channel == "phone"


def test_a_stream_token_works_once(
    phone_line: Line, scripted_provider: type[ScriptedProvider]
) -> None:
    async def scenario() -> bool:
        token = await database_sync_to_async(stream_token)()
        first = Twilio()
        await first.start(token)
        await opened(scripted_provider)
        second = Twilio()
        await second.start(token)
        refused = await second.closed()
        await first.socket.disconnect()
        return refused

    assert asyncio.run(scenario())
    assert CallSession.objects.count() == 1


def test_a_process_at_capacity_refuses_the_stream_with_try_again(
    phone_line: Line, scripted_provider: type[ScriptedProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "KOE_MAX_CALLS_PER_PROCESS", 1)
    monkeypatch.setattr(LOAD, "calls", 1)  # another call holds this process's only slot
    monkeypatch.setattr(LOAD, "units", 1)

    async def scenario() -> dict[str, Any]:
        token = await database_sync_to_async(stream_token)()
        twilio = Twilio()
        await twilio.start(token)
        return await twilio.socket.receive_output(timeout=5)  # type: ignore[no-any-return]

    closing = asyncio.run(scenario())
    assert (closing["type"], closing["code"]) == ("websocket.close", CLOSE_TRY_AGAIN)
    assert not CallSession.objects.exists()
    assert not scripted_provider.connections
    assert PhoneCall.objects.get().status != "in-progress"


def test_an_unknown_token_opens_no_call(
    phone_line: Line, scripted_provider: type[ScriptedProvider]
) -> None:
    async def scenario() -> bool:
        twilio = Twilio()
        await twilio.start("st_forged")
        return await twilio.closed()

    assert asyncio.run(scenario())
    assert not CallSession.objects.exists()
    assert not scripted_provider.connections


def test_an_operator_ends_a_phone_call_and_twilio_hangs_up(
    phone_line: Line, scripted_provider: type[ScriptedProvider]
) -> None:
    async def scenario() -> bool:
        twilio = Twilio()
        await twilio.start(await database_sync_to_async(stream_token)())
        await opened(scripted_provider)
        call = await database_sync_to_async(CallSession.objects.get)()
        await get_channel_layer().group_send(
            call.group_name, {"type": "call.end", "reason": "operator"}
        )
        return await twilio.closed()

    assert asyncio.run(scenario())
    assert CallSession.objects.get().end_reason == "operator"


def test_malformed_messages_are_ignored_and_the_call_goes_on(
    phone_line: Line, scripted_provider: type[ScriptedProvider]
) -> None:
    async def scenario() -> ScriptedConnection:
        twilio = Twilio()
        await twilio.start(await database_sync_to_async(stream_token)())
        connection = await opened(scripted_provider)
        for junk in ("not json", "[1, 2]", '{"event": "media", "media": "x"}',
                     '{"event": "media", "media": {"payload": 5}}', '{"event": "mark"}',
                     '{"event": "dtmf", "dtmf": null}', '{"event": "surprise"}'):  # fmt: skip
            await twilio.socket.send_to(text_data=junk)
        await twilio.send("media", media={"track": "inbound", "payload": "AAAA"})
        await eventually(lambda: len(connection.sent) >= 3)
        await twilio.socket.disconnect()
        return connection

    connection = asyncio.run(scenario())
    assert connection.sent[2] == {"type": "input_audio_buffer.append", "audio": "AAAA"}
    assert CallSession.objects.get().end_reason == "client_closed"


def test_disclosed_consent_is_said_before_the_greeting_and_kept(
    tenant_a: TenantWorld, scripted_provider: type[ScriptedProvider]
) -> None:
    make_line(
        tenant_a,
        consent=PhoneConsent.DISCLOSED,
        provider="openai",
        model="gpt-realtime",
        greeting="Hello, Acme Dental.",
        consent_prompt="This call is transcribed to help us serve you.",
    )

    async def scenario() -> ScriptedConnection:
        twilio = Twilio()
        await twilio.start(await database_sync_to_async(stream_token)())
        connection = await opened(scripted_provider)
        await twilio.socket.disconnect()
        return connection

    connection = asyncio.run(scenario())
    greeting = connection.sent[1]["response"]["instructions"]
    assert greeting.endswith("This call is transcribed to help us serve you. Hello, Acme Dental.")
    call = CallSession.objects.get()
    assert (call.consent_scope, call.consent_method) == ("transcript", "disclosed")
    assert call.consent_text == "This call is transcribed to help us serve you."
    assert PhoneNumber.objects.get().consent == "disclosed"


def test_a_caller_hanging_up_mid_answer_ends_the_call_as_client_closed(
    phone_line: Line, scripted_provider: type[ScriptedProvider]
) -> None:
    async def scenario() -> None:
        twilio = Twilio()
        await twilio.start(await database_sync_to_async(stream_token)())
        connection = await opened(scripted_provider)
        connection.push({"type": "response.created", "response": {"id": "resp_1"}})
        connection.push(audio_delta("item_a", b"\x01" * 1600))
        await twilio.receive()  # the agent is speaking...
        await twilio.send("stop", stop={"accountSid": ACCOUNT_SID, "callSid": "CA"})
        assert await twilio.closed()
        await eventually(lambda: connection.closed)

    asyncio.run(scenario())
    call = CallSession.objects.get()
    assert (call.status, call.end_reason) == ("ended", "client_closed")
    assert call.end_detail == "The caller hung up."


def test_a_connection_that_never_starts_a_stream_is_closed(
    phone_line: Line, monkeypatch: Any
) -> None:
    monkeypatch.setattr(phone_stream, "START_TIMEOUT_SECONDS", 0.2)

    async def scenario() -> bool:
        twilio = Twilio()
        connected, _ = await twilio.socket.connect()
        assert connected
        await twilio.send("connected", protocol="Call", version="1.0.0")
        return await twilio.closed(timeout=3)

    assert asyncio.run(scenario())
    assert not CallSession.objects.exists()
