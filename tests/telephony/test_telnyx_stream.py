"""Telnyx's media stream as a call transport, driven message by message with a scripted
provider: the call it opens, audio reordered by sequence number, marks and barge-in, key
presses, the end of the call (and Koe hanging up at Telnyx when the end is Koe's)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from agents.telephony import stream as phone_stream
from agents.telephony import telnyx
from agents.telephony.models import PhoneCall
from agents.telephony.telnyx_stream import ReorderBuffer
from calls.models import CallSession
from koe.asgi import application
from tests.conftest import TenantWorld
from tests.fakes.telnyx import FakeTelnyxRest
from tests.realtime.doubles import ScriptedConnection, ScriptedProvider
from tests.realtime.helpers import eventually
from tests.telephony.conftest import CALLER, NUMBER, Line
from tests.telephony.telnyx_line import API_KEY, make_telnyx_line, ring

pytestmark = pytest.mark.django_db(transaction=True)
STREAM = "/v1/telephony/telnyx/stream"
STREAM_ID = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC"


@pytest.fixture
def phone_line(tenant_a: TenantWorld) -> Line:
    return make_telnyx_line(
        tenant_a, provider="openai", model="gpt-realtime", voice="alloy", greeting="Hello."
    )


def answered(fake: FakeTelnyxRest) -> tuple[str, str]:
    """A call rung through the webhook: (call_control_id, the stream token Telnyx got)."""
    count = len(fake.actions("answer")) + 1
    call_control_id, response = ring(call_control_id=fake.ring())
    assert response.json() == {"status": "answered"}
    answer = fake.wait_for("answer", count=count)
    return call_control_id, parse_qs(urlsplit(answer.stream_url).query)["token"][0]


def frame(number: int) -> str:
    """20 ms of caller audio that says which frame it is."""
    return base64.b64encode(bytes([number % 256]) * 160).decode()


class Telnyx:
    """Telnyx's side of one stream, message by message (tests/fakes/telnyx.py has the
    real-time one)."""

    def __init__(self, token: str) -> None:
        self.socket = WebsocketCommunicator(application, f"{STREAM}?token={token}")

    async def send(self, event: str, sequence: int | None, **fields: Any) -> None:
        message: dict[str, Any] = {"event": event, **fields}
        if sequence is not None:
            message["sequence_number"] = str(sequence)
        if event != "connected":
            message["stream_id"] = STREAM_ID
        await self.socket.send_to(text_data=orjson.dumps(message).decode())

    async def start(self, call_control_id: str = "v3:call") -> None:
        connected, _ = await self.socket.connect()
        assert connected
        await self.send("connected", None, version="1.0.0")
        await self.send(
            "start",
            1,
            start={
                "user_id": "3E6F995F-85F7-4705-9741-53B116D28237",
                "call_control_id": call_control_id,
                "from": CALLER,
                "to": NUMBER,
                "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
            },
        )

    async def media(self, sequence: int, payload: str | None = None) -> None:
        await self.send(
            "media",
            sequence,
            media={"track": "inbound", "chunk": str(sequence - 1),
                   "timestamp": str((sequence - 2) * 20), "payload": payload or frame(sequence)},
        )  # fmt: skip

    async def receive(self, timeout: float = 5) -> dict[str, Any]:
        return orjson.loads(await self.socket.receive_from(timeout=timeout))  # type: ignore[no-any-return]

    async def closed(self) -> bool:
        output = await self.socket.receive_output(timeout=5)
        return output["type"] == "websocket.close"


async def opened(scripted: type[ScriptedProvider]) -> ScriptedConnection:
    await eventually(lambda: bool(scripted.connections))
    connection = scripted.connections[0]
    await eventually(lambda: len(connection.sent) >= 2)  # session.update, the greeting
    return connection


def appended(connection: ScriptedConnection) -> list[str]:
    return [e["audio"] for e in connection.sent if e["type"] == "input_audio_buffer.append"]


def audio_delta(item_id: str, audio: bytes) -> dict[str, Any]:
    return {
        "type": "response.output_audio.delta",
        "response_id": "resp_1",
        "item_id": item_id,
        "output_index": 0,
        "content_index": 0,
        "delta": base64.b64encode(audio).decode(),
    }


# --- the reorder buffer ---------------------------------------------------------------------


def test_the_reorder_buffer_puts_frames_in_order_and_drops_repeats() -> None:
    buffer = ReorderBuffer(depth=3)
    buffer.start_after(1)
    assert buffer.push(3, "c") == []
    assert buffer.push(2, "b") == ["b", "c"]
    assert buffer.push(3, "c") == []  # a repeat
    assert buffer.push(5, "e") == [] and buffer.holding
    assert buffer.push(4, "d") == ["d", "e"] and not buffer.holding
    assert buffer.push(2, "b") == []  # its turn has passed
    assert buffer.dropped == 2


def test_other_messages_numbers_are_gaps_no_audio_waits_for() -> None:
    buffer = ReorderBuffer(depth=3)
    buffer.start_after(1)
    assert buffer.push(2, "a") == ["a"]
    assert buffer.push(4, "c") == []
    assert buffer.push(3, None) == ["c"]  # 3 was a mark's echo, not audio


def test_a_lost_frame_holds_the_stream_back_three_frames_at_most() -> None:
    buffer = ReorderBuffer(depth=3)
    buffer.start_after(1)
    assert buffer.push(2, "a") == ["a"]
    assert [buffer.push(n, f"f{n}") for n in (4, 5, 6)] == [[], [], []]  # 3 never comes
    assert buffer.push(7, "f7") == ["f4", "f5", "f6", "f7"]
    assert buffer.push(3, "late") == []
    assert buffer.push(9, "f9") == [] and buffer.drain() == ["f9"]
    assert buffer.push(10, "f10") == ["f10"]


def test_without_a_start_number_the_first_frames_are_sorted_among_themselves() -> None:
    buffer = ReorderBuffer(depth=3)
    assert [buffer.push(n, f"f{n}") for n in (12, 11, 13)] == [[], [], []]
    assert buffer.push(14, "f14") == ["f11", "f12", "f13", "f14"]
    assert buffer.push(None, "unnumbered") == ["unnumbered"]


# --- the stream -----------------------------------------------------------------------------


def test_the_call_opens_and_hears_the_callers_audio_in_order(
    phone_line: Line, scripted_provider: type[ScriptedProvider], telnyx_api: FakeTelnyxRest
) -> None:
    async def scenario() -> ScriptedConnection:
        _, token = await database_sync_to_async(answered)(telnyx_api)
        peer = Telnyx(token)
        await peer.start()
        connection = await opened(scripted_provider)
        # Frames 2..9 arrive shuffled, one twice and one after its turn has passed.
        for number in (3, 2, 5, 4, 4, 7, 6, 9, 8):
            await peer.media(number)
        await eventually(lambda: len(appended(connection)) >= 8)
        await peer.media(5)
        await peer.send("stop", 10, stop={"user_id": "u", "call_control_id": "v3:call"})
        assert await peer.closed()
        return connection

    connection = asyncio.run(scenario())
    session = connection.sent[0]["session"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert connection.sent[1]["type"] == "response.create"  # the greeting
    assert appended(connection) == [frame(number) for number in range(2, 10)]
    call = CallSession.objects.get()
    assert call.channel == "phone" and call.end_user_ref == CALLER
    assert call.end_reason == "client_closed" and call.end_detail == "The caller hung up."
    phone_call = PhoneCall.objects.get()
    assert phone_call.call == call and phone_call.remote_number == ""
    telnyx.commands.wait()
    assert [request.action for request in telnyx_api.actions()] == ["answer"]  # no hang-up


def test_audio_after_a_lost_frame_goes_on_within_60_ms(
    phone_line: Line, scripted_provider: type[ScriptedProvider], telnyx_api: FakeTelnyxRest
) -> None:
    async def scenario() -> ScriptedConnection:
        _, token = await database_sync_to_async(answered)(telnyx_api)
        peer = Telnyx(token)
        await peer.start()
        connection = await opened(scripted_provider)
        await peer.media(2)
        await peer.media(4)  # 3 is lost, and the caller falls silent
        await eventually(lambda: len(appended(connection)) >= 2, timeout=1)
        await peer.media(3)  # too late now
        await peer.media(5)
        await eventually(lambda: len(appended(connection)) >= 3)
        await peer.socket.disconnect()
        return connection

    connection = asyncio.run(scenario())
    assert appended(connection) == [frame(2), frame(4), frame(5)]


def test_agent_audio_goes_out_as_media_with_a_mark_after_each_piece(
    phone_line: Line, scripted_provider: type[ScriptedProvider], telnyx_api: FakeTelnyxRest
) -> None:
    async def scenario() -> list[dict[str, Any]]:
        _, token = await database_sync_to_async(answered)(telnyx_api)
        peer = Telnyx(token)
        await peer.start()
        connection = await opened(scripted_provider)
        connection.push(audio_delta("item_a", b"\x01" * 1600))
        received = [await peer.receive(), await peer.receive()]
        await peer.socket.disconnect()
        return received

    media, mark = asyncio.run(scenario())
    assert media == {
        "event": "media",
        "media": {"payload": base64.b64encode(b"\x01" * 1600).decode()},
    }
    assert mark["event"] == "mark" and set(mark) == {"event", "mark"}
    assert mark["mark"]["name"]


def test_agent_audio_goes_out_in_whole_20_ms_pieces(
    phone_line: Line, scripted_provider: type[ScriptedProvider], telnyx_api: FakeTelnyxRest
) -> None:
    """Telnyx plays 20 ms to 30 s of audio a message: smaller deltas are joined, and an
    item's last piece is padded with silence."""
    audio = bytes(range(1, 101)) * 3  # three deltas of 100 bytes (12.5 ms each)

    async def scenario() -> list[dict[str, Any]]:
        _, token = await database_sync_to_async(answered)(telnyx_api)
        peer = Telnyx(token)
        await peer.start()
        connection = await opened(scripted_provider)
        for offset in (0, 100, 200):
            connection.push(audio_delta("item_a", audio[offset : offset + 100]))
        connection.push({"type": "response.output_audio.done", "response_id": "resp_1",
                         "item_id": "item_a", "output_index": 0, "content_index": 0})  # fmt: skip
        received = [await peer.receive() for _ in range(3)]
        await peer.socket.disconnect()
        return received

    received = asyncio.run(scenario())
    media = [base64.b64decode(m["media"]["payload"]) for m in received if m["event"] == "media"]
    assert media == [audio[:160], audio[160:] + b"\xff" * 20]
    # One mark for the item's 37.5 ms (marks come every 100 ms, and at an item's end).
    assert [m["event"] for m in received] == ["media", "media", "mark"]


def test_a_barge_in_clears_telnyx_and_truncates_at_what_the_marks_say_was_heard(
    phone_line: Line, scripted_provider: type[ScriptedProvider], telnyx_api: FakeTelnyxRest
) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], ScriptedConnection]:
        _, token = await database_sync_to_async(answered)(telnyx_api)
        peer = Telnyx(token)
        await peer.start()
        connection = await opened(scripted_provider)
        for _ in range(3):  # three pieces of 200 ms
            connection.push(audio_delta("item_a", b"\x01" * 1600))
        out = [await peer.receive() for _ in range(6)]
        marks = [message["mark"]["name"] for message in out if message["event"] == "mark"]
        # The first piece played (Telnyx echoed its mark), then the caller spoke.
        await peer.send("mark", 2, mark={"name": marks[0]})
        await asyncio.sleep(0.05)
        connection.push({"type": "input_audio_buffer.speech_started", "audio_start_ms": 900,
                         "item_id": "item_caller"})  # fmt: skip
        out.append(await peer.receive())
        await eventually(
            lambda: any(e["type"] == "conversation.item.truncate" for e in connection.sent)
        )
        # Telnyx returns the marks a clear dropped: they change nothing.
        await peer.send("mark", 3, mark={"name": marks[2]})
        await peer.socket.disconnect()
        return out, connection

    out, connection = asyncio.run(scenario())
    assert out[-1] == {"event": "clear"}
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


def test_key_presses_reach_the_agent_as_one_message_once_the_caller_pauses(
    phone_line: Line,
    scripted_provider: type[ScriptedProvider],
    telnyx_api: FakeTelnyxRest,
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(phone_stream, "DTMF_PAUSE_SECONDS", 0.2)

    async def scenario() -> ScriptedConnection:
        _, token = await database_sync_to_async(answered)(telnyx_api)
        peer = Telnyx(token)
        await peer.start()
        connection = await opened(scripted_provider)
        connection.push({"type": "response.created", "response": {"id": "resp_greeting"}})
        connection.push({"type": "response.done", "response": {"id": "resp_greeting",
                         "status": "completed", "output": []}})  # fmt: skip
        await peer.media(2)
        await peer.send("dtmf", 3, dtmf={"digit": "4"})
        await peer.send("dtmf", 4, dtmf={"digit": "2"})
        await peer.send("dtmf", 5, dtmf={"digit": "not a key"})
        await peer.media(6)  # right after the keys: not held back waiting for them
        await eventually(lambda: any(e["type"] == "response.create" for e in connection.sent[2:]))
        await peer.socket.disconnect()
        return connection

    connection = asyncio.run(scenario())
    created = [e for e in connection.sent if e["type"] == "conversation.item.create"]
    assert len(created) == 1
    assert created[0]["item"]["content"][0]["text"] == (
        "[The caller pressed 4 2 on the phone keypad.]"
    )
    assert connection.sent[-1]["type"] == "response.create"
    assert appended(connection) == [frame(2), frame(6)]


def test_a_stream_token_works_once(
    phone_line: Line, scripted_provider: type[ScriptedProvider], telnyx_api: FakeTelnyxRest
) -> None:
    async def scenario() -> bool:
        _, token = await database_sync_to_async(answered)(telnyx_api)
        first = Telnyx(token)
        await first.start()
        await opened(scripted_provider)
        second = Telnyx(token)
        await second.start()
        refused = await second.closed()
        await first.socket.disconnect()
        return refused

    assert asyncio.run(scenario())
    assert CallSession.objects.count() == 1


def test_an_unknown_or_missing_token_opens_no_call(
    phone_line: Line, scripted_provider: type[ScriptedProvider]
) -> None:
    async def scenario(token: str) -> bool:
        peer = Telnyx(token)
        await peer.start()
        return await peer.closed()

    assert asyncio.run(scenario("st_forged"))
    assert asyncio.run(scenario(""))
    assert not CallSession.objects.exists()
    assert not scripted_provider.connections


def test_when_koe_ends_the_call_it_hangs_up_at_telnyx(
    phone_line: Line, scripted_provider: type[ScriptedProvider], telnyx_api: FakeTelnyxRest
) -> None:
    async def scenario() -> tuple[str, bool]:
        call_control_id, token = await database_sync_to_async(answered)(telnyx_api)
        peer = Telnyx(token)
        await peer.start(call_control_id)
        await opened(scripted_provider)
        call = await database_sync_to_async(CallSession.objects.get)()
        await get_channel_layer().group_send(
            call.group_name, {"type": "call.end", "reason": "operator"}
        )
        return call_control_id, await peer.closed()

    call_control_id, closed = asyncio.run(scenario())
    assert closed
    assert CallSession.objects.get().end_reason == "operator"
    hangup = telnyx_api.wait_for("hangup")
    assert hangup.call_control_id == call_control_id and hangup.status == 200
    assert hangup.headers["authorization"] == f"Bearer {API_KEY}"


def test_malformed_messages_are_ignored_and_the_call_goes_on(
    phone_line: Line, scripted_provider: type[ScriptedProvider], telnyx_api: FakeTelnyxRest
) -> None:
    async def scenario() -> ScriptedConnection:
        _, token = await database_sync_to_async(answered)(telnyx_api)
        peer = Telnyx(token)
        await peer.start()
        connection = await opened(scripted_provider)
        for junk in ("not json", "[1, 2]", '{"event": "media", "media": "x"}',
                     '{"event": "media", "media": {"payload": 5}}', '{"event": "mark"}',
                     '{"event": "dtmf", "dtmf": null}', '{"event": "surprise"}',
                     '{"event": "error", "payload": {"code": 100002}}'):  # fmt: skip
            await peer.socket.send_to(text_data=junk)
        await peer.send("media", None, media={"track": "inbound", "payload": "AAAA"})
        await eventually(lambda: len(connection.sent) >= 3)
        await peer.socket.disconnect()
        return connection

    connection = asyncio.run(scenario())
    assert connection.sent[2] == {"type": "input_audio_buffer.append", "audio": "AAAA"}
    assert CallSession.objects.get().end_reason == "client_closed"
