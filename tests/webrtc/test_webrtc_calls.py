"""WebRTC calls through ``POST /v1/realtime/calls``: an aiortc caller, as a browser is,
talks to an agent on the fake OpenAI upstream; hang-up through the API; refusals."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from typing import Any

import orjson
import pytest
from channels.db import database_sync_to_async
from django.test import AsyncClient, Client

from agents.models import Agent
from calls.load import LOAD
from calls.models import CallSession, EndReason, TranscriptItem
from tests.conftest import TenantWorld
from tests.fakes.realtime_server import FakeRealtimeServer, FunctionCall, Turn, tone
from tests.realtime.helpers import connect, eventually, receive, session_token
from tests.realtime.test_upstream import UPSTREAM_KEY
from tests.webrtc.caller import WebRTCCaller

pytestmark = pytest.mark.django_db(transaction=True)

HOURS = Turn(user="When do you open?", assistant="We open at nine every weekday.")


def silence(milliseconds: int) -> bytes:
    return bytes(48 * milliseconds)


async def place_call(
    caller: WebRTCCaller, authorization: str, query: str = "", **extra: Any
) -> Any:
    """Post the caller's offer as a browser does; on 201, complete the connection."""
    response = await AsyncClient().post(
        f"/v1/realtime/calls{query}",
        await caller.offer(),
        content_type="application/sdp",
        headers={"Authorization": authorization, **extra},
    )
    if response.status_code == 201:
        await caller.answered(response.content.decode())
    return response


async def secret_key_call(
    world: TenantWorld, agent: Agent, consent: str = "none"
) -> tuple[WebRTCCaller, str]:
    """A server's WebRTC call (its secret key), up: the caller and the call's id."""
    caller = WebRTCCaller()
    query = f"?model={agent.public_id}&consent={consent}"
    response = await place_call(caller, f"Bearer {world.secret}", query)
    assert response.status_code == 201, response.content
    await caller.until("session.created")
    return caller, response["Location"].rsplit("/", 1)[1]


async def ended(call_id: str) -> CallSession:
    call: CallSession | None = None

    def load() -> bool:
        nonlocal call
        call = CallSession.objects.get(public_id=call_id)
        return call.end_reason != ""

    for _ in range(200):
        if await database_sync_to_async(load)():
            break
        await asyncio.sleep(0.05)
    assert call is not None and call.end_reason, "the call never ended"
    return call


def test_a_caller_talks_to_the_agent_over_webrtc_and_the_api_hangs_up(
    tenant_a: TenantWorld, openai_agent: Agent, upstream_settings: Any
) -> None:
    async def scenario() -> tuple[WebRTCCaller, str, FakeRealtimeServer]:
        async with FakeRealtimeServer([HOURS], expected_key=UPSTREAM_KEY) as fake:
            upstream_settings.KOE_OPENAI_REALTIME_URL = fake.url
            caller = WebRTCCaller()
            response = await place_call(
                caller,
                f"Bearer {tenant_a.secret}",
                f"?model={openai_agent.public_id}&consent=transcript",
            )
            assert response.status_code == 201, response.content
            assert response["Content-Type"] == "application/sdp"
            call_id = response["Location"].rsplit("/", 1)[1]
            assert response["Location"] == f"/v1/realtime/calls/{call_id}"
            await caller.until("session.created")
            caller.say(silence(300) + tone(700) + silence(900))
            await caller.until("response.done", timeout=30)
            await caller.until("output_audio_buffer.stopped", timeout=10)
            hangup = await AsyncClient().post(
                f"/v1/realtime/calls/{call_id}/hangup",
                headers={"Authorization": f"Bearer {tenant_a.secret}"},
            )
            assert hangup.status_code == 200, hangup.content
            await ended(call_id)
            await caller.close()
            await eventually(lambda: LOAD.calls == 0)  # the slot is free once it closed
            return caller, call_id, fake

    caller, call_id, fake = asyncio.run(scenario())
    assert caller.peer.connectionState == "closed"
    types = caller.types()
    for expected in (
        "session.created",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.committed",
        "response.created",
        "output_audio_buffer.started",
        "response.output_audio_transcript.done",
        "response.done",
        "output_audio_buffer.stopped",
    ):
        assert expected in types
    # As on OpenAI's WebRTC: the agent's audio is on the track, never on the data channel.
    assert "response.output_audio.delta" not in types
    assert caller.loudness() > 300, "the agent's voice never reached the caller"
    # The provider was given PCM16 at 24 kHz whatever the agent's format.
    update = fake.received[0]
    assert update["session"]["audio"]["input"]["format"]["type"] == "audio/pcm"
    call = CallSession.objects.get(public_id=call_id)
    assert call.end_reason == EndReason.OPERATOR
    assert call.end_detail == "Hung up through the API."
    # The media path, measured: on loopback, nothing lost and a round trip in ms.
    quality = call.media_quality
    assert quality["caller_packets_received"] > 50  # 20 ms packets for seconds
    assert quality["caller_loss_percent"] == 0
    assert quality["round_trip_ms"] is None or 0 <= quality["round_trip_ms"] < 500
    assert list(TranscriptItem.objects.filter(call=call).values_list("role", "text")) == [
        ("user", HOURS.user),
        ("assistant", HOURS.assistant),
    ]
    assert LOAD.calls == 0


def test_a_browser_calls_with_its_session_token_and_hangs_up_by_closing(
    tenant_a: TenantWorld, openai_agent: Agent, upstream_settings: Any
) -> None:
    token = session_token(tenant_a.secret, openai_agent.public_id)

    async def scenario() -> str:
        async with FakeRealtimeServer([HOURS], expected_key=UPSTREAM_KEY) as fake:
            upstream_settings.KOE_OPENAI_REALTIME_URL = fake.url
            caller = WebRTCCaller()
            response = await place_call(caller, f"Bearer {token}")
            assert response.status_code == 201, response.content
            session = (await caller.until("session.created"))["session"]
            # A browser does not see the tenant's instructions.
            assert session["instructions"] == ""
            await caller.close()
            call_id = response["Location"].rsplit("/", 1)[1]
            call = await ended(call_id)
            assert call.end_reason == EndReason.CLIENT_CLOSED
            # The token was single-use.
            again = await place_call(WebRTCCaller(), f"Bearer {token}")
            assert again.status_code == 401
            assert again.json()["error"]["code"] == "session_token_used"
            await eventually(lambda: LOAD.calls == 0)
            return call_id

    asyncio.run(scenario())
    assert LOAD.calls == 0


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [
        ("", 401, "missing_api_key"),
        ("Bearer sk_not_a_key", 401, "invalid_api_key"),
        ("Bearer ek_unknown", 401, "invalid_session_token"),
    ],
)
def test_a_caller_without_valid_credentials_is_refused_and_nothing_is_stored(
    tenant_a: TenantWorld, openai_agent: Agent, authorization: str, status: int, code: str
) -> None:
    async def scenario() -> Any:
        caller = WebRTCCaller()
        response = await place_call(caller, authorization, f"?model={openai_agent.public_id}")
        await caller.close()
        return response

    response = asyncio.run(scenario())
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert not CallSession.objects.exists()
    assert LOAD.calls == 0


@pytest.mark.parametrize(
    "offer",
    [
        "",
        "not an sdp at all",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF\r\n",
        "v=0\r\nm=audio x y z\r\na=rtpmap:111 opus/48000/2\r\n" * 3,
    ],
)
def test_a_malformed_offer_is_a_clear_400_and_nothing_is_stored(
    tenant_a: TenantWorld, openai_agent: Agent, offer: str
) -> None:
    async def scenario() -> Any:
        return await AsyncClient().post(
            f"/v1/realtime/calls?model={openai_agent.public_id}",
            offer,
            content_type="application/sdp",
            headers={"Authorization": f"Bearer {tenant_a.secret}"},
        )

    response = asyncio.run(scenario())
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] in ("missing_sdp", "invalid_sdp")
    assert error["message"]
    assert not CallSession.objects.exists()
    assert LOAD.calls == 0


def test_another_tenants_key_cannot_hang_up_a_call(
    tenant_a: TenantWorld, tenant_b: TenantWorld, openai_agent: Agent, upstream_settings: Any
) -> None:
    async def scenario() -> None:
        async with FakeRealtimeServer([HOURS], expected_key=UPSTREAM_KEY) as fake:
            upstream_settings.KOE_OPENAI_REALTIME_URL = fake.url
            caller, call_id = await secret_key_call(tenant_a, openai_agent)
            hangup = await AsyncClient().post(
                f"/v1/realtime/calls/{call_id}/hangup",
                headers={"Authorization": f"Bearer {tenant_b.secret}"},
            )
            assert hangup.status_code == 404
            assert hangup.json()["error"]["type"] == "not_found"
            call = await database_sync_to_async(CallSession.objects.get)(public_id=call_id)
            assert call.end_reason == ""
            await caller.close()
            await ended(call_id)
            await eventually(lambda: LOAD.calls == 0)

    asyncio.run(scenario())


def test_a_session_token_comes_with_the_ice_servers_and_short_lived_turn_credentials(
    tenant_a: TenantWorld, openai_agent: Agent, settings: Any
) -> None:
    settings.KOE_ICE_SERVERS = [{"urls": ["stun:stun.koe.example:3478"]}]
    settings.KOE_TURN_URLS = ["turn:turn.koe.example:3478?transport=udp"]
    settings.KOE_TURN_SECRET = "shared-with-coturn"
    settings.KOE_TURN_CREDENTIAL_SECONDS = 600
    response = Client().post(
        "/v1/realtime/client_secrets",
        {"session": {"type": "realtime", "model": openai_agent.public_id}},
        content_type="application/json",
        headers={"Authorization": f"Bearer {tenant_a.secret}"},
    )
    stun, turn = response.json()["ice_servers"]
    assert stun == {"urls": ["stun:stun.koe.example:3478"]}
    assert turn["urls"] == ["turn:turn.koe.example:3478?transport=udp"]
    expiry = int(turn["username"].split(":", 1)[0])
    assert 590 <= expiry - time.time() <= 600
    # What coturn (use-auth-secret) computes to check it.
    digest = hmac.new(b"shared-with-coturn", turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(digest).decode()


def test_a_webrtc_call_weighs_more_than_a_relayed_one_against_the_process_limit(
    tenant_a: TenantWorld, openai_agent: Agent, upstream_settings: Any
) -> None:
    """Opus costs CPU: with room for 8 relayed calls, one WebRTC call (6) fits, a second
    is refused as server_busy (503, Retry-After), and a WebSocket call still fits."""
    upstream_settings.KOE_MAX_CALLS_PER_PROCESS = 8
    upstream_settings.KOE_WEBRTC_CALL_WEIGHT = 6

    async def scenario() -> None:
        async with FakeRealtimeServer([HOURS], expected_key=UPSTREAM_KEY) as fake:
            upstream_settings.KOE_OPENAI_REALTIME_URL = fake.url
            query = f"?model={openai_agent.public_id}"
            first = WebRTCCaller()
            assert (await place_call(first, f"Bearer {tenant_a.secret}", query)).status_code == 201
            second = WebRTCCaller()
            refused = await place_call(second, f"Bearer {tenant_a.secret}", query)
            assert refused.status_code == 503
            assert refused["Retry-After"]
            assert refused.json()["error"]["code"] == "server_busy"
            assert LOAD.units == 6 and LOAD.calls == 1
            websocket = await connect(
                f"/v1/realtime{query}", [(b"authorization", f"Bearer {tenant_a.secret}".encode())]
            )
            assert (await receive(websocket))["type"] == "session.created"
            assert LOAD.units == 7
            await websocket.disconnect()
            await second.close()
            await first.close()
            await eventually(lambda: LOAD.units == 0 and LOAD.calls == 0)

    asyncio.run(scenario())
    assert CallSession.objects.count() == 2  # the refused caller stored nothing


def test_a_callers_events_reach_the_provider_in_the_order_sent_and_video_is_refused_quietly(
    tenant_a: TenantWorld, openai_agent: Agent, upstream_settings: Any
) -> None:
    """A burst of data-channel events arrives upstream in order (each waits its turn);
    a camera in the offer is answered inactive: the call is audio."""

    async def scenario() -> tuple[str, list[dict[str, Any]]]:
        async with FakeRealtimeServer([HOURS], expected_key=UPSTREAM_KEY) as fake:
            upstream_settings.KOE_OPENAI_REALTIME_URL = fake.url
            caller = WebRTCCaller()
            caller.peer.addTransceiver("video", direction="sendrecv")
            response = await place_call(
                caller, f"Bearer {tenant_a.secret}", f"?model={openai_agent.public_id}"
            )
            assert response.status_code == 201, response.content
            await caller.until("session.created")
            for index in range(40):
                caller.send(
                    {
                        "type": "conversation.item.create",
                        "item": {
                            "type": "message",
                            "role": "user",
                            "content": [{"type": "input_text", "text": f"line {index}"}],
                        },
                    }
                )
            await eventually(
                lambda: (
                    len([e for e in fake.received if e["type"] == "conversation.item.create"]) == 40
                )
            )
            await caller.close()
            return response.content.decode(), list(fake.received)

    answer, received = asyncio.run(scenario())
    video = answer[answer.index("m=video") :]
    assert "a=inactive" in video.split("m=", 2)[1]
    texts = [
        e["item"]["content"][0]["text"] for e in received if e["type"] == "conversation.item.create"
    ]
    assert texts == [f"line {index}" for index in range(40)]


def test_an_offer_with_too_many_media_sections_is_refused(
    tenant_a: TenantWorld, openai_agent: Agent
) -> None:
    async def scenario() -> Any:
        caller = WebRTCCaller()
        for _ in range(5):
            caller.peer.addTransceiver("audio", direction="sendrecv")
        response = await place_call(
            caller, f"Bearer {tenant_a.secret}", f"?model={openai_agent.public_id}"
        )
        await caller.close()
        return response

    response = asyncio.run(scenario())
    assert response.status_code == 400
    assert "media sections" in response.json()["error"]["message"]
    assert not CallSession.objects.exists()


def test_over_webrtc_the_agents_tool_runs_and_speaking_over_it_cuts_it_at_what_was_heard(
    tenant_a: TenantWorld, openai_agent: Agent, upstream_settings: Any
) -> None:
    """Against the fake OpenAI: the caller's words start the agent's tool, its spoken
    result plays on the track; the caller speaks over it and the server stops the audio
    (output_audio_buffer.cleared) and truncates the item upstream to what was heard."""
    long_answer = "Your table for two is booked. " * 12  # ~2 s of the fake's audio
    script = [
        Turn(
            user="A table for two tonight",
            function_call=FunctionCall("book_table", {"people": 2}),
            assistant_after_call=long_answer.strip(),
        ),
        Turn(user="Thanks", assistant="You're welcome."),
    ]

    async def scenario() -> tuple[WebRTCCaller, FakeRealtimeServer, str]:
        async with FakeRealtimeServer(script, expected_key=UPSTREAM_KEY) as fake:
            upstream_settings.KOE_OPENAI_REALTIME_URL = fake.url
            caller, call_id = await secret_key_call(tenant_a, openai_agent, "transcript")
            caller.say(silence(300) + tone(700) + silence(900))
            await caller.until("output_audio_buffer.started", timeout=20)
            await asyncio.sleep(0.5)  # half a second of the answer is heard
            caller.say(tone(600) + silence(900))
            await caller.until("output_audio_buffer.cleared", timeout=10)
            await eventually(
                lambda: any(e["type"] == "conversation.item.truncate" for e in fake.received)
            )
            await caller.close()
            await ended(call_id)
            return caller, fake, call_id

    caller, fake, call_id = asyncio.run(scenario())
    (output,) = fake.function_outputs
    assert orjson.loads(output["output"])["booked"] is True
    (truncate,) = [e for e in fake.received if e["type"] == "conversation.item.truncate"]
    # What was heard: more than nothing, less than the whole answer (~2.4 s).
    assert 200 <= truncate["audio_end_ms"] <= 2000, truncate
    assert "conversation.item.truncated" in caller.types()
    rows = TranscriptItem.objects.filter(call__public_id=call_id).values_list("role", "tool_name")
    assert ("tool", "book_table") in list(rows)
