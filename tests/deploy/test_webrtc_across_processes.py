"""A WebRTC call on one Koe process is followed, steered and hung up from another: two
servers on the real Redis, the call's offer answered by the first, the tenant's sideband
and its hang-up served by the second. The audio stays on the first; control crosses."""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from agents.models import Agent
from calls.models import CallSession, EndReason
from tests.conftest import TenantWorld
from tests.e2e.server import restartable_daphne
from tests.fakes.realtime_server import FakeRealtimeServer, Turn, tone
from tests.webrtc.caller import WebRTCCaller

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

UPSTREAM_KEY = "sk-test-upstream"
HOURS = Turn(user="When do you open?", assistant="We open at nine every weekday.")


def test_a_call_on_one_process_is_followed_and_hung_up_from_another(
    tenant_a: TenantWorld, openai_agent: Agent
) -> None:
    fake = FakeRealtimeServer([HOURS], expected_key=UPSTREAM_KEY).start_in_thread()
    env = {"KOE_OPENAI_REALTIME_URL": fake.url, "OPENAI_API_KEY": UPSTREAM_KEY}
    headers = {"Authorization": f"Bearer {tenant_a.secret}"}
    with ExitStack() as stack:
        stack.callback(fake.stop)
        holder, other = (
            stack.enter_context(restartable_daphne(**env, KOE_INSTANCE_NAME=name))
            for name in ("web-a", "web-b")
        )

        async def scenario() -> tuple[str, list[dict[str, Any]], WebRTCCaller]:
            caller = WebRTCCaller()
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await client.post(
                    f"{holder.base}/v1/realtime/calls",
                    params={"model": openai_agent.public_id, "consent": "transcript"},
                    content=await caller.offer(),
                    headers={**headers, "Content-Type": "application/sdp"},
                )
                assert answer.status_code == 201, answer.text
                call_id = answer.headers["location"].rsplit("/", 1)[1]
                await caller.answered(answer.text)
                await caller.until("session.created")
                seen: list[dict[str, Any]] = []
                sideband_url = f"{other.base.replace('http', 'ws')}/v1/realtime?call_id={call_id}"
                async with connect(sideband_url, additional_headers=headers) as sideband:
                    await asyncio.sleep(0.5)  # the attach crosses Redis
                    caller.say(bytes(48 * 300) + tone(700) + bytes(48 * 900))
                    while not seen or seen[-1]["type"] != "response.done":
                        seen.append(orjson.loads(await asyncio.wait_for(sideband.recv(), 20)))
                    hangup = await client.post(
                        f"{other.base}/v1/realtime/calls/{call_id}/hangup", headers=headers
                    )
                    assert hangup.status_code == 200
                    with pytest.raises(ConnectionClosed):  # closed as the call ends
                        while True:
                            await asyncio.wait_for(sideband.recv(), 10)
            await caller.close()
            return call_id, seen, caller

        call_id, seen, caller = asyncio.run(scenario())
        deadline = time.monotonic() + 10
        while not CallSession.objects.filter(public_id=call_id, status="ended").exists():
            assert time.monotonic() < deadline, "the call's end was never written"
            time.sleep(0.05)

    call = CallSession.objects.get(public_id=call_id)
    assert call.server_instance.split("~")[0] == "web-a"
    assert call.end_reason == EndReason.OPERATOR
    types = [event["type"] for event in seen]
    assert "response.output_audio_transcript.done" in types
    assert "response.output_audio.delta" not in types
    assert caller.loudness() > 300
