"""Self-tests of the Twilio fake (tests/fakes/twilio.py): it must match Twilio's docs before
the product is tested against it."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from typing import Any
from urllib.parse import parse_qs

import httpx
import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.fakes.http_receiver import HttpReceiver, Reply
from tests.fakes.twilio import (
    MediaStream,
    downsample_24k_to_8k,
    mulaw_to_pcm16,
    pcm16_to_mulaw,
    ring,
    tone_mulaw,
    twilio_signature,
)
from tests.fakes.twilio_rest import FakeTwilioRest, ScriptedError

ACCOUNT = "AC" + "0" * 32
TOKEN = "test-auth-token"


# --- signature ---------------------------------------------------------------------------


def test_signature_matches_the_examples_in_twilios_docs() -> None:
    # https://www.twilio.com/docs/usage/security#validating-requests (the same vector is in
    # every official helper library's RequestValidator tests); an older revision of the
    # page used other phone numbers and gave 0/KCTR6DLpKmkAf8muzZqo1nDgQ=.
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    older = params | {"Caller": "+12349013030", "From": "+12349013030"}
    assert twilio_signature("12345", url, older) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert (
        twilio_signature("12345", url, params | {"Digits": "9"}) != "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    )


def test_ring_posts_signed_twilio_parameters_and_reads_the_stream_twiml() -> None:
    twiml = (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
        '<Stream url="wss://koe.example/media"><Parameter name="agent" value="a1"/>'
        '<Parameter name="token" value="t&amp;2"/></Stream></Connect></Response>'
    )
    reply = Reply(body=twiml, headers={"Content-Type": "text/xml"})
    with HttpReceiver(default=reply) as receiver:
        url = receiver.url("/twilio/voice?tenant=x")
        answered = asyncio.run(
            ring(
                url,
                auth_token=TOKEN,
                account_sid=ACCOUNT,
                from_number="+15551230000",
                to_number="+15559870000",
            )
        )
        wrong = asyncio.run(
            ring(
                url,
                auth_token=TOKEN,
                account_sid=ACCOUNT,
                from_number="+15551230000",
                to_number="+15559870000",
                sign=False,
            )
        )
    assert answered.status_code == 200
    assert answered.stream_url == "wss://koe.example/media"
    assert answered.parameters == {"agent": "a1", "token": "t&2"}
    assert re.fullmatch(r"CA[0-9a-f]{32}", answered.call_sid)
    first, second = receiver.requests
    assert first.headers["content-type"] == "application/x-www-form-urlencoded"
    form = {name: values[0] for name, values in parse_qs(first.body.decode()).items()}
    assert form == {
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "CallSid": answered.call_sid,
        "CallStatus": "ringing",
        "Called": "+15559870000",
        "Caller": "+15551230000",
        "Direction": "inbound",
        "From": "+15551230000",
        "To": "+15559870000",
    }
    assert first.headers["x-twilio-signature"] == twilio_signature(TOKEN, url, form)
    second_form = {name: values[0] for name, values in parse_qs(second.body.decode()).items()}
    assert second.headers["x-twilio-signature"] != twilio_signature(TOKEN, url, second_form)
    assert wrong.signature == second.headers["x-twilio-signature"]


# --- G.711 -------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_mulaw_matches_g711_and_the_reference_codec() -> None:
    import audioop  # CPython's codec (removed in 3.13): a second, independent reference

    codes = bytes(range(256))
    decoded = np.frombuffer(mulaw_to_pcm16(codes), dtype="<i2")
    # G.711 end points: 0x80 and 0x00 are the largest magnitudes, 0xFF and 0x7F zero.
    assert decoded[0x80] == 32124 and decoded[0x00] == -32124
    assert decoded[0xFF] == 0 and decoded[0x7F] == 0
    assert mulaw_to_pcm16(codes) == audioop.ulaw2lin(codes, 2)
    # Encoding: ITU-T G.191's reference rounding; audioop agrees on every sample >= 0 and
    # is at most one quantisation step away below 0 (it rounds negatives the other way).
    every_sample = np.arange(-32768, 32768, dtype="<i2")
    ours = np.frombuffer(pcm16_to_mulaw(every_sample.tobytes()), dtype=np.uint8)
    reference = np.frombuffer(audioop.lin2ulaw(every_sample.tobytes(), 2), dtype=np.uint8)
    assert (ours[32768:] == reference[32768:]).all()
    assert np.abs(ours[:32768].astype(int) - reference[:32768]).max() <= 1
    assert (ours[:32768] != reference[:32768]).mean() < 0.05
    # Known codes: zero (both signs), the first decision value (14-bit 1), the clip points.
    samples = np.array([0, -1, 3, 4, 32767, -32768, 32124, -32124], dtype="<i2")
    assert list(pcm16_to_mulaw(samples.tobytes())) == [
        0xFF,
        0x7F,
        0xFF,
        0xFE,
        0x80,
        0x00,
        0x80,
        0x00,
    ]
    # Round trip: every code but negative zero comes back as itself.
    again = pcm16_to_mulaw(mulaw_to_pcm16(codes))
    assert again == codes[:0x7F] + b"\xff" + codes[0x80:]
    sine = np.rint(9000 * np.sin(np.arange(800) / 5)).astype("<i2")
    restored = np.frombuffer(mulaw_to_pcm16(pcm16_to_mulaw(sine.tobytes())), dtype="<i2")
    assert np.max(np.abs(restored.astype(int) - sine)) <= 9000 // 32  # within a step


def test_downsample_keeps_speech_band_and_removes_what_would_alias() -> None:
    rate = 24000
    times = np.arange(rate) / rate

    def level(frequency: float) -> tuple[float, float]:
        pcm = np.rint(10000 * np.sin(2 * np.pi * frequency * times)).astype("<i2")
        out = np.frombuffer(downsample_24k_to_8k(pcm.tobytes()), dtype="<i2").astype(float)
        assert out.size == rate // 3
        spectrum = np.abs(np.fft.rfft(out[400:-400]))
        return float(spectrum.max()), float(np.argmax(spectrum) * 8000 / out[400:-400].size)

    kept, peak = level(1000)
    assert abs(peak - 1000) < 5
    aliased, _ = level(5300)  # would fold to 2.7 kHz
    assert 20 * np.log10(kept / aliased) > 40


# --- Media Streams -----------------------------------------------------------------------


class Peer:
    """A tiny Media Streams server: what the product plays, driven by the test."""

    def __init__(self) -> None:
        self.socket: asyncio.Future[ServerConnection] = asyncio.get_running_loop().create_future()
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.arrivals: list[tuple[float, dict[str, Any]]] = []

    async def handle(self, socket: ServerConnection) -> None:
        self.socket.set_result(socket)
        async for frame in socket:
            message = json.loads(frame)
            self.arrivals.append((time.monotonic(), message))
            await self.frames.put(message)

    async def next(self, event: str | None = None) -> dict[str, Any]:
        while True:
            message = await asyncio.wait_for(self.frames.get(), 5)
            if event is None or message["event"] == event:
                return message


def test_media_stream_speaks_twilios_protocol_and_plays_marks_and_clears_in_real_time() -> None:
    async def scenario() -> None:
        peer = Peer()
        async with serve(peer.handle, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            stream = await MediaStream.open(
                f"ws://127.0.0.1:{port}/media", {"agent": "a1"}, account_sid=ACCOUNT
            )
            socket = await peer.socket
            sid = stream.stream_sid
            # connected, then start, exactly as documented
            assert await peer.next() == {
                "event": "connected",
                "protocol": "Call",
                "version": "1.0.0",
            }
            start = await peer.next()
            assert start == {
                "event": "start",
                "sequenceNumber": "1",
                "start": {
                    "accountSid": ACCOUNT,
                    "streamSid": sid,
                    "callSid": stream.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": {"agent": "a1"},
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
                "streamSid": sid,
            }
            assert re.fullmatch(r"MZ[0-9a-f]{32}", sid)

            # Caller audio: 10 chunks of 20 ms, paced by the clock.
            began = time.monotonic()
            await stream.send_audio(tone_mulaw(200))
            # Paced by deadlines: the tenth chunk goes 180 ms after the first, not sooner.
            assert 0.18 <= time.monotonic() - began < 1.0
            media = [await peer.next("media") for _ in range(10)]
            assert [m["sequenceNumber"] for m in media] == [str(n) for n in range(2, 12)]
            assert [m["media"]["chunk"] for m in media] == [str(n) for n in range(1, 11)]
            stamps = [int(m["media"]["timestamp"]) for m in media]
            assert stamps == sorted(stamps) and stamps[1] - stamps[0] == 20
            assert all(m["media"]["track"] == "inbound" and m["streamSid"] == sid for m in media)
            assert b"".join(base64.b64decode(m["media"]["payload"]) for m in media) == tone_mulaw(
                200
            )
            arrivals = [at for at, m in peer.arrivals if m["event"] == "media"]
            assert arrivals[-1] - began >= 0.18

            # Agent audio then a mark: echoed only once the 400 ms have played.
            agent = tone_mulaw(400, frequency=300)
            for offset in range(0, len(agent), 1600):
                payload = base64.b64encode(agent[offset : offset + 1600]).decode()
                await socket.send(
                    json.dumps({"event": "media", "streamSid": sid, "media": {"payload": payload}})
                )
            sent_at = time.monotonic()
            await socket.send(
                json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "m1"}})
            )
            echo = await peer.next("mark")
            waited = time.monotonic() - sent_at
            assert echo["mark"] == {"name": "m1"} and echo["streamSid"] == sid
            assert int(echo["sequenceNumber"]) == 12
            assert 0.35 < waited < 1.0, waited
            # By the fake's own clock: not before the 400 ms from the first frame's arrival.
            first_arrival = stream.media_arrivals[0][0]
            assert stream.echoed_marks[0].echoed_at - first_arrival >= 0.4
            assert bytes(stream.played) == agent

            # A second of audio, a mark, then clear after 100 ms: the mark comes back at
            # once, and the rest of the audio is never heard.
            long_audio = tone_mulaw(1000, frequency=500)
            payload = base64.b64encode(long_audio).decode()
            await socket.send(
                json.dumps({"event": "media", "streamSid": sid, "media": {"payload": payload}})
            )
            await socket.send(
                json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "m2"}})
            )
            await asyncio.sleep(0.1)
            cleared_at = time.monotonic()
            await socket.send(json.dumps({"event": "clear", "streamSid": sid}))
            echo = await peer.next("mark")
            assert echo["mark"] == {"name": "m2"}
            assert time.monotonic() - cleared_at < 0.2
            assert len(stream.clears) == 1 and stream.clears[0].marks == ["m2"]
            heard = len(stream.played) - len(agent)
            # What played is exactly the time between the audio arriving and the clear.
            long_arrival = stream.media_arrivals[-1][0]
            expected = int((stream.clears[0].at - long_arrival) * 8000)
            assert 0 < heard < 8000 and abs(heard - expected) <= 1
            assert stream.echoed_marks[1].echoed_at - stream.clears[0].at < 0.05
            assert stream.clears[0].dropped_bytes == 8000 - heard
            assert [mark.name for mark in stream.echoed_marks] == ["m1", "m2"]
            assert stream.echoed_marks[1].cleared and not stream.echoed_marks[0].cleared
            await stream.wait_until_quiet(50, timeout=1)

            # Things Twilio would reject are recorded, not played.
            await socket.send(
                json.dumps(
                    {"event": "media", "streamSid": "MZother", "media": {"payload": payload}}
                )
            )
            await socket.send(
                json.dumps(
                    {"event": "media", "streamSid": sid, "media": {"payload": "not base64!"}}
                )
            )
            await socket.send(json.dumps({"event": "hello", "streamSid": sid}))
            await socket.send(b"\x00\x01")
            await socket.send("{")
            await socket.send(json.dumps({"event": "mark", "streamSid": sid, "mark": {}}))
            await asyncio.sleep(0.1)
            assert len(stream.protocol_errors) == 6, stream.protocol_errors
            assert stream.queued_bytes == 0

            # Keys and hanging up.
            await stream.send_dtmf("5")
            dtmf = await peer.next("dtmf")
            assert dtmf == {
                "event": "dtmf",
                "sequenceNumber": "14",
                "streamSid": sid,
                "dtmf": {"track": "inbound_track", "digit": "5"},
            }
            await stream.stop()
            stop = await peer.next("stop")
            assert stop == {
                "event": "stop",
                "sequenceNumber": "15",
                "stop": {"accountSid": ACCOUNT, "callSid": stream.call_sid},
                "streamSid": sid,
            }
            assert stream.closed and not stream.closed_by_server

    asyncio.run(scenario())


def test_media_stream_notices_the_server_closing_and_waits_for_audio() -> None:
    async def scenario() -> None:
        peer = Peer()
        async with serve(peer.handle, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            async with await MediaStream.open(
                f"ws://127.0.0.1:{port}/media", account_sid=ACCOUNT, call_sid="CA" + "1" * 32
            ) as stream:
                socket = await peer.socket
                await peer.next("start")
                audio = base64.b64encode(b"\x7e" * 800).decode()
                await socket.send(
                    json.dumps(
                        {
                            "event": "media",
                            "streamSid": stream.stream_sid,
                            "media": {"payload": audio},
                        }
                    )
                )
                await stream.wait_for_audio(100, timeout=1)
                await stream.wait_for_audio(100, timeout=1, played=True)
                assert time.monotonic() - stream.media_arrivals[0][0] >= 0.1  # heard in real time
                await stream.send_silence(100, pace=0)
                await socket.close(1011, "agent failed")
                await stream.wait_closed(timeout=2)
                assert stream.closed_by_server and stream.close_code == 1011
                assert stream.protocol_errors == []

    asyncio.run(scenario())


# --- REST --------------------------------------------------------------------------------


def test_rest_fake_creates_updates_and_refuses_like_twilio() -> None:
    with FakeTwilioRest(ACCOUNT, TOKEN, api_keys={"SK" + "2" * 32: "key-secret"}) as twilio:
        calls = twilio.calls_url()
        refused = httpx.post(calls, data={"To": "+1555", "From": "+1556", "Url": "https://x/y"})
        assert refused.status_code == 401 and refused.json()["code"] == 20003
        wrong = httpx.post(calls, data={"To": "+1"}, auth=(ACCOUNT, "nope"))
        assert wrong.status_code == 401

        created = httpx.post(
            calls,
            data={
                "To": "+15559870000",
                "From": "+15551230000",
                "Twiml": "<Response><Connect><Stream url='wss://k/m'/></Connect></Response>",
                "StatusCallback": "https://koe.example/status",
                "StatusCallbackEvent": ["initiated", "answered", "completed"],
                "MachineDetection": "Enable",
            },
            auth=(ACCOUNT, TOKEN),
        )
        assert created.status_code == 201
        call = created.json()
        assert re.fullmatch(r"CA[0-9a-f]{32}", call["sid"])
        assert call["status"] == "queued" and call["direction"] == "outbound-api"
        assert call["to"] == "+15559870000" and call["from"] == "+15551230000"
        assert call["account_sid"] == ACCOUNT and call["api_version"] == "2010-04-01"
        assert call["uri"] == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{call['sid']}.json"
        recorded = twilio.requests[-1]
        assert recorded.auth == (ACCOUNT, TOKEN)
        assert recorded.form_lists["StatusCallbackEvent"] == ["initiated", "answered", "completed"]
        assert twilio.calls[call["sid"]].parameters["MachineDetection"] == "Enable"

        missing = httpx.post(calls, data={"From": "+1"}, auth=(ACCOUNT, TOKEN))
        assert missing.status_code == 400 and missing.json()["code"] == 21201

        twilio.answer(call["sid"])
        key = ("SK" + "2" * 32, "key-secret")
        redirected = httpx.post(
            twilio.call_url(call["sid"]), data={"Twiml": "<Response><Hangup/></Response>"}, auth=key
        )
        assert redirected.status_code == 200 and redirected.json()["status"] == "in-progress"
        assert twilio.calls[call["sid"]].twiml == "<Response><Hangup/></Response>"
        ended = httpx.post(twilio.call_url(call["sid"]), data={"Status": "completed"}, auth=key)
        assert ended.status_code == 200 and ended.json()["status"] == "completed"
        assert ended.json()["end_time"] is not None
        late = httpx.post(twilio.call_url(call["sid"]), data={"Url": "https://x"}, auth=key)
        assert late.status_code == 400 and late.json()["code"] == 21220

        unknown = httpx.post(
            twilio.call_url("CA" + "f" * 32), data={"Status": "completed"}, auth=key
        )
        assert unknown.status_code == 404
        assert unknown.json() == {
            "code": 20404,
            "message": f"The requested resource /2010-04-01/Accounts/{ACCOUNT}/Calls/CA{'f' * 32}.json was not found",
            "more_info": "https://www.twilio.com/docs/errors/20404",
            "status": 404,
        }

        twilio.fail_next(ScriptedError(429, 20429, "Too Many Requests", method="POST"))
        limited = httpx.post(calls, data={"To": "+1", "From": "+2", "Url": "https://x"}, auth=key)
        assert limited.status_code == 429 and limited.json()["code"] == 20429
        fetched = httpx.get(twilio.call_url(call["sid"]), auth=key)
        assert fetched.json()["status"] == "completed"
        assert [request.method for request in twilio.requests].count("POST") == 9
