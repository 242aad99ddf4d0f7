"""Koe under uvicorn (koe.uvicorn_server) keeps what Koe's Daphne server guarantees: its
heartbeat, the documented error for an oversized frame (up to four times the limit, the
call going on), and the probes. The drain is in test_drain.py, a whole SDK conversation
with a tool call in test_over_daphne.py, both for either server."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from agents.models import Agent
from calls.models import ServerInstance
from tests.conftest import TenantWorld
from tests.fakes.realtime_server import FakeRealtimeServer
from tests.live import daphne_server

pytestmark = pytest.mark.django_db(transaction=True)

UPSTREAM_KEY = "sk-test-upstream"
LIMIT = 64 * 1024


def next_error(socket: object) -> dict[str, object]:
    while True:
        event = json.loads(socket.recv(timeout=10))  # type: ignore[attr-defined]
        if event["type"] == "error":
            return event["error"]  # type: ignore[no-any-return]


def test_uvicorn_beats_refuses_oversized_frames_with_the_documented_error_and_probes(
    tenant_a: TenantWorld, openai_agent: Agent
) -> None:
    fake = FakeRealtimeServer([], expected_key=UPSTREAM_KEY).start_in_thread()
    try:
        with daphne_server(
            "uvicorn",
            KOE_OPENAI_REALTIME_URL=fake.url,
            OPENAI_API_KEY=UPSTREAM_KEY,
            KOE_REALTIME_MAX_FRAME_BYTES=str(LIMIT),
            KOE_INSTANCE_NAME="uvicorn-1",
            KOE_HEARTBEAT_SECONDS="0.2",
        ) as base:
            ready = httpx.get(f"{base}/readyz", timeout=5)
            url = base.replace("http", "ws") + f"/v1/realtime?model={openai_agent.public_id}"
            headers = {"Authorization": f"Bearer {tenant_a.secret}"}
            with connect(url, additional_headers=headers, max_size=None) as socket:
                assert json.loads(socket.recv(timeout=10))["type"] == "session.created"
                # Over Koe's limit, within four times it: refused, the call goes on.
                socket.send(
                    json.dumps({"type": "input_audio_buffer.append", "audio": "A" * 2 * LIMIT})
                )
                refused = next_error(socket)
                socket.send(json.dumps({"type": "no.such.event"}))
                still_served = next_error(socket)
            with connect(url, additional_headers=headers, max_size=None) as socket:
                json.loads(socket.recv(timeout=10))
                # Far over it: uvicorn closes the connection (1009) without buffering it.
                socket.send("x" * 8 * LIMIT)
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        socket.recv(timeout=10)
            deadline = time.monotonic() + 10
            while not ServerInstance.objects.filter(name__startswith="uvicorn-1~").exists():
                assert time.monotonic() < deadline, "the uvicorn server never beat"
                time.sleep(0.1)
    finally:
        fake.stop()
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert refused["code"] == "frame_too_large"
    assert still_served["code"] != "frame_too_large"
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
