"""A WebRTC call end to end: Koe under a real Daphne (and uvicorn), the offer posted by the official
``openai`` SDK (``realtime.calls.create``, its multipart form), an aiortc caller speaking
Piper-synthesised words as Opus over UDP, and the built-in voice answering: the caller
cuts the greeting short (barge-in), books a table (the agent's tool), hears the
confirmation; the tenant's server follows it all on the sideband and hangs up there."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import openai
import orjson
import pytest
from websockets.asyncio.client import connect

from calls.models import CallSession, EndReason, TranscriptItem
from dashboard.management.commands.seed_demo import seed_demo
from tests.live import daphne_server
from tests.local.helpers import show_tool_calls, utterance
from tests.webrtc.caller import WebRTCCaller

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for_end(call_id: str) -> CallSession:
    deadline = time.monotonic() + 15
    while not CallSession.objects.filter(public_id=call_id, status="ended").exists():
        assert time.monotonic() < deadline, "the call was never recorded as ended"
        time.sleep(0.05)
    return CallSession.objects.get(public_id=call_id)


@pytest.mark.parametrize("server", ["daphne", "uvicorn"])
def test_a_caller_books_a_table_over_webrtc_on_the_built_in_voice(server: str) -> None:
    demo = seed_demo()
    show_tool_calls(demo["agent_id"], "hosted")
    booking = utterance("I'd like a table for two at seven.")
    with daphne_server(server, KOE_LOCAL_WARM_UP="1") as base:
        client = openai.AsyncOpenAI(api_key=demo["secret_key"], base_url=f"{base}/v1")

        async def follow(sideband: Any, seen: list[dict[str, Any]]) -> None:
            async for frame in sideband:
                seen.append(orjson.loads(frame))

        async def call() -> tuple[WebRTCCaller, str, float, list[dict[str, Any]]]:
            caller = WebRTCCaller()
            answered = await client.realtime.calls.with_raw_response.create(
                sdp=await caller.offer(),
                session={"type": "realtime", "model": demo["agent_id"]},
                extra_query={"consent": "transcript"},
            )
            assert answered.status_code == 201
            call_id = answered.headers["location"].rsplit("/", 1)[1]
            await caller.answered(answered.content.decode())
            await caller.until("session.created", timeout=60)  # the models may be loading
            sideband = await connect(
                f"{base.replace('http', 'ws')}/v1/realtime?call_id={call_id}",
                additional_headers={"Authorization": f"Bearer {demo['secret_key']}"},
            )
            on_sideband: list[dict[str, Any]] = []
            following = asyncio.ensure_future(follow(sideband, on_sideband))
            await caller.until("output_audio_buffer.started", timeout=30)  # the greeting
            await asyncio.sleep(0.8)
            heard_before = len(caller.heard)
            caller.say(booking)  # over the greeting: it is cut short
            await caller.until("output_audio_buffer.cleared", timeout=20)
            mark = len(caller.events)
            await caller.until("response.mcp_call.completed", after=mark, timeout=60)
            await caller.until("output_audio_buffer.stopped", after=mark, timeout=60)
            loudness = _rms(caller.heard[heard_before:])
            await sideband.send(orjson.dumps({"type": "session.close"}).decode())
            await asyncio.get_running_loop().run_in_executor(None, wait_for_end, call_id)
            await asyncio.wait_for(following, 10)  # the sideband is closed with the call
            await caller.close()
            return caller, call_id, loudness, on_sideband

        caller, call_id, loudness, on_sideband = asyncio.run(call())

    types = caller.types()
    errors = [e["error"]["code"] for e in caller.events if e["type"] == "error"]
    assert errors == ["call_ended_operator"]  # only the farewell, as the call ends
    assert "response.output_audio.delta" not in types  # audio is on the track
    assert "conversation.item.truncated" in types  # the greeting, to what was heard
    heard = next(e for e in caller.events if e["type"].endswith("transcription.completed"))
    assert "table for" in heard["transcript"].lower(), heard
    final = [e["response"] for e in caller.events if e["type"] == "response.done"][-1]
    spoken = final["output"][0]["content"][0]["transcript"]
    assert "Your table for 2 at 19:00 is booked" in spoken
    assert loudness > 300, "the caller never heard the agent"

    # The tenant's server saw the call as it went: the caller's words, the tool, the answer.
    followed = [event["type"] for event in on_sideband]
    assert "conversation.item.input_audio_transcription.completed" in followed
    assert "response.mcp_call.completed" in followed or any(
        e["type"] == "response.output_item.done" and e["item"]["type"] == "function_call"
        for e in on_sideband
    )
    assert "response.output_audio.delta" not in followed

    call = CallSession.objects.get(public_id=call_id)
    assert call.end_reason == EndReason.OPERATOR
    assert call.end_detail == "Ended by the tenant's server (sideband)."
    rows = list(TranscriptItem.objects.filter(call=call).order_by("sequence"))
    assert [row.role for row in rows] == ["assistant", "user", "tool", "tool", "assistant"]
    assert rows[2].tool_name == "book_table"
    assert "booked" in rows[3].text


def _rms(pcm: Any) -> float:
    samples = np.frombuffer(bytes(pcm), dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0
