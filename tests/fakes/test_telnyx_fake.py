"""Self-tests of the Telnyx fake (tests/fakes/telnyx.py): it must match Telnyx's docs before
the product is tested against it."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from websockets.asyncio.server import ServerConnection, serve

from tests.fakes.http_receiver import HttpReceiver, Reply
from tests.fakes.telnyx import (
    FakeTelnyxRest,
    MediaStream,
    TelnyxKeys,
    call_event,
    send_webhook,
)
from tests.fakes.twilio import tone_mulaw

API_KEY = "KEY_fake_telnyx"


def test_webhooks_are_signed_with_ed25519_over_the_timestamp_and_the_raw_body() -> None:
    keys = TelnyxKeys.generate()
    raw = base64.b64decode(keys.public_key)
    assert len(raw) == 32  # the portal's public key: base64 of the raw 32 bytes
    event = call_event("call.initiated", call_control_id="v3:abc", from_number="+1", to_number="+2")
    with HttpReceiver(default=Reply(body="{}")) as receiver:
        delivered = asyncio.run(send_webhook(receiver.url("/hook"), event, keys))
        request = receiver.requests[0]
    assert delivered.status_code == 200
    stamp = request.headers["telnyx-timestamp"]
    assert abs(int(stamp) - time.time()) < 5
    signature = base64.b64decode(request.headers["telnyx-signature-ed25519"])
    assert len(signature) == 64
    public = Ed25519PublicKey.from_public_bytes(raw)
    public.verify(signature, stamp.encode() + b"|" + request.body)
    with pytest.raises(InvalidSignature):
        public.verify(signature, stamp.encode() + b"|" + request.body + b" ")
    body = json.loads(request.body)
    assert body["data"]["record_type"] == "event"
    assert body["data"]["event_type"] == "call.initiated"
    payload = body["data"]["payload"]
    assert {"call_control_id", "call_leg_id", "call_session_id", "connection_id", "from", "to",
            "direction", "state", "client_state"} <= set(payload)  # fmt: skip
    assert (payload["direction"], payload["state"]) == ("incoming", "parked")


def test_rest_fake_answers_rejects_and_hangs_up_like_telnyx() -> None:
    with FakeTelnyxRest(API_KEY) as fake:
        call = fake.ring()

        def post(action: str, body: Any, key: str = API_KEY, call_id: str = call) -> Any:
            return httpx.post(
                f"{fake.base_url}/calls/{call_id}/actions/{action}",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
            )

        assert post("answer", {}, key="wrong").status_code == 401
        assert post("answer", {}, call_id="v3:unknown").status_code == 404
        refused = post("answer", {"stream_url": "https://not-a-socket"})
        assert refused.status_code == 422 and refused.json()["errors"][0]["detail"]
        assert post("answer", {"stream_url": "wss://x", "stream_bidirectional_codec": "pcmu"}
                    ).status_code == 422  # fmt: skip
        answer = {
            "stream_url": "wss://koe.example/stream?token=t",
            "stream_track": "inbound_track",
            "stream_bidirectional_mode": "rtp",
            "stream_bidirectional_codec": "PCMU",
            "command_id": "c1",
        }
        ok = post("answer", answer)
        assert ok.status_code == 200 and ok.json() == {"data": {"result": "ok"}}
        assert fake.calls[call].state == "answered"
        assert post("answer", answer).status_code == 200  # the same command_id: ignored
        assert post("answer", answer | {"command_id": "c2"}).status_code == 422
        assert post("reject", {"cause": "CALL_REJECTED"}).status_code == 422  # answered
        assert post("hangup", {}).status_code == 200
        ended = post("hangup", {})
        assert ended.status_code == 422 and ended.json()["errors"][0]["code"] == "90018"
        accepted = [r for r in fake.actions("answer") if r.status == 200]
        assert [r.stream_url for r in accepted] == [answer["stream_url"]] * 2
        assert accepted[0].headers["authorization"] == f"Bearer {API_KEY}"

        ringing = fake.ring()
        assert post("reject", {}, call_id=ringing).status_code == 422  # cause is required
        assert post("reject", {"cause": "USER_BUSY"}, call_id=ringing).status_code == 200
        assert fake.calls[ringing].state == "hangup"
        assert [r.status for r in fake.actions("reject")] == [422, 422, 200]


class Peer:
    """A tiny media stream server: what the product plays, driven by the test."""

    def __init__(self) -> None:
        self.socket: asyncio.Future[ServerConnection] = asyncio.get_running_loop().create_future()
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def handle(self, socket: ServerConnection) -> None:
        self.socket.set_result(socket)
        async for frame in socket:
            await self.frames.put(json.loads(frame))

    async def next(self, event: str | None = None) -> dict[str, Any]:
        while True:
            message = await asyncio.wait_for(self.frames.get(), 5)
            if event is None or message["event"] == event:
                return message


def test_media_stream_speaks_telnyxs_protocol_out_of_order_and_plays_marks() -> None:
    async def scenario() -> None:
        peer = Peer()
        async with serve(peer.handle, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            stream = await MediaStream.open_telnyx(
                f"ws://127.0.0.1:{port}/stream?token=t",
                call_control_id="v3:call",
                from_number="+15551230000",
                to_number="+15559870000",
                seed=1,
            )
            socket = await peer.socket
            assert await peer.next() == {"event": "connected", "version": "1.0.0"}
            start = await peer.next()
            assert start["sequence_number"] == "1" and start["stream_id"] == stream.stream_id
            assert start["start"]["call_control_id"] == "v3:call"
            assert start["start"]["media_format"] == {
                "encoding": "PCMU",
                "sample_rate": 8000,
                "channels": 1,
            }

            # 30 frames, shuffled within runs of 3 but numbered in their true order.
            audio = tone_mulaw(600)
            began = time.monotonic()
            await stream.send_audio(audio, reorder=3)
            assert 0.5 <= time.monotonic() - began < 2.0  # still paced in real time
            media = [await peer.next("media") for _ in range(30)]
            numbers = [int(m["sequence_number"]) for m in media]
            assert numbers != sorted(numbers) and stream.frames_out_of_order > 0
            assert sorted(numbers) == list(range(2, 32))
            assert all(abs(n - 2 - i) <= 2 for i, n in enumerate(numbers))  # within its run
            in_order = sorted(media, key=lambda m: int(m["sequence_number"]))
            assert b"".join(base64.b64decode(m["media"]["payload"]) for m in in_order) == audio
            assert [m["media"]["chunk"] for m in in_order] == [str(n) for n in range(1, 31)]
            assert all(m["media"]["track"] == "inbound" for m in media)

            # Agent audio then a mark: returned once the 400 ms have played.
            agent = tone_mulaw(400, frequency=300)
            payload = base64.b64encode(agent).decode()
            await socket.send(json.dumps({"event": "media", "media": {"payload": payload}}))
            sent_at = time.monotonic()
            await socket.send(json.dumps({"event": "mark", "mark": {"name": "m1"}}))
            echo = await peer.next("mark")
            assert echo["mark"] == {"name": "m1"} and echo["sequence_number"] == "32"
            assert 0.35 < time.monotonic() - sent_at < 1.0
            assert bytes(stream.played) == agent

            # A clear drops what is queued and returns the pending mark at once.
            long_audio = base64.b64encode(tone_mulaw(1000)).decode()
            await socket.send(json.dumps({"event": "media", "media": {"payload": long_audio}}))
            await socket.send(json.dumps({"event": "mark", "mark": {"name": "m2"}}))
            await asyncio.sleep(0.1)
            await socket.send(json.dumps({"event": "clear"}))
            assert (await peer.next("mark"))["mark"] == {"name": "m2"}
            assert stream.clears[0].marks == ["m2"] and stream.clears[0].dropped_bytes > 0

            # Under 20 ms of audio, or an event Telnyx does not take: protocol errors.
            short = base64.b64encode(b"\xff" * 80).decode()
            await socket.send(json.dumps({"event": "media", "media": {"payload": short}}))
            await socket.send(json.dumps({"event": "start"}))
            await asyncio.sleep(0.1)
            assert len(stream.protocol_errors) == 2, stream.protocol_errors

            await stream.send_dtmf("5")
            dtmf = await peer.next("dtmf")
            assert dtmf["dtmf"] == {"digit": "5"} and dtmf["stream_id"] == stream.stream_id
            await stream.stop()
            stop = await peer.next("stop")
            assert stop["stop"]["call_control_id"] == "v3:call"
            assert int(stop["sequence_number"]) == int(dtmf["sequence_number"]) + 1
            assert stream.closed and not stream.closed_by_server

    asyncio.run(scenario())
