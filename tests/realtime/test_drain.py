"""SIGTERM drains Koe's server: no new call, /readyz 503, live calls go on until they end
or KOE_DRAIN_SECONDS pass; a second SIGTERM ends them at once. Under the real server."""

from __future__ import annotations

import signal
import time

import httpx
import openai
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from agents.models import Agent
from agents.realtime.errors import CLOSE_TRY_AGAIN
from calls.models import CallSession
from tests.conftest import TenantWorld
from tests.e2e.server import RestartableDaphne, restartable_daphne
from tests.fakes.realtime_server import FakeRealtimeServer, Turn
from tests.live import sdk_turn

pytestmark = pytest.mark.django_db(transaction=True)

# Both of Koe's servers drain the same way (koe.server, koe.uvicorn_server).
each_server = pytest.mark.parametrize("server", ["daphne", "uvicorn"])

UPSTREAM_KEY = "sk-test-upstream"


def open_call(
    server: RestartableDaphne, tenant: TenantWorld, agent: Agent
) -> openai.resources.realtime.realtime.RealtimeConnection:
    client = openai.OpenAI(api_key=tenant.secret, base_url=f"{server.base}/v1")
    return client.realtime.connect(
        model=agent.public_id, extra_query={"consent": "transcript"}
    ).enter()


def sigterm(server: RestartableDaphne) -> None:
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)


def wait_until_draining(server: RestartableDaphne) -> httpx.Response:
    deadline = time.monotonic() + 10
    while True:
        response = httpx.get(f"{server.base}/readyz", timeout=2)
        if response.status_code == 503:
            return response
        assert time.monotonic() < deadline, "the server never stopped being ready"
        time.sleep(0.05)


def exit_code(server: RestartableDaphne, within: float) -> int:
    assert server.process is not None
    return server.process.wait(timeout=within)


@each_server
def test_a_draining_server_refuses_new_calls_and_stops_once_its_live_call_ends(
    tenant_a: TenantWorld, openai_agent: Agent, server: str
) -> None:
    fake = FakeRealtimeServer(
        [
            Turn(user="", assistant="Hello, you are through to Acme."),
            Turn(user="", assistant="Yes, we are open until ten."),
        ],
        expected_key=UPSTREAM_KEY,
    ).start_in_thread()
    try:
        with restartable_daphne(
            server,
            KOE_OPENAI_REALTIME_URL=fake.url,
            OPENAI_API_KEY=UPSTREAM_KEY,
            KOE_DRAIN_SECONDS="60",
        ) as koe:
            live = open_call(koe, tenant_a, openai_agent)
            assert sdk_turn(live, "Hi").text == "Hello, you are through to Acme."
            sigterm(koe)
            not_ready = wait_until_draining(koe)
            alive = httpx.get(f"{koe.base}/healthz", timeout=2)

            # A new caller is told to try elsewhere, with the close code that says so.
            url = f"{koe.base.replace('http', 'ws')}/v1/realtime?model={openai_agent.public_id}"
            with connect(
                url, additional_headers={"Authorization": f"Bearer {tenant_a.secret}"}
            ) as ws:
                refusal = ws.recv(timeout=5)
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=5)

            # The live call goes on as if nothing happened.
            assert sdk_turn(live, "Are you open late?").text == "Yes, we are open until ten."
            assert koe.process is not None and koe.process.poll() is None
            live.close()
            # Its end lets the server go, long before the 60 s drain.
            code = exit_code(koe, within=15)
    finally:
        fake.stop()
    assert not_ready.json()["reason"] == "server_draining"
    assert alive.status_code == 200
    assert '"server_draining"' in refusal
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_TRY_AGAIN
    assert code == 0
    call = CallSession.objects.get()
    assert call.end_reason == "client_closed"
    assert list(call.transcript.filter(role="assistant").values_list("text", flat=True)) == [
        "Hello, you are through to Acme.",
        "Yes, we are open until ten.",
    ]


@each_server
@pytest.mark.parametrize("second_sigterm", [False, True], ids=["drain-timeout", "sigterm-again"])
def test_calls_still_live_when_the_drain_ends_are_ended_as_server_shutdown(
    tenant_a: TenantWorld, openai_agent: Agent, second_sigterm: bool, server: str
) -> None:
    fake = FakeRealtimeServer(
        [Turn(user="", assistant="Hello, you are through to Acme.")], expected_key=UPSTREAM_KEY
    ).start_in_thread()
    drain = "60" if second_sigterm else "2"
    try:
        with restartable_daphne(
            server,
            KOE_OPENAI_REALTIME_URL=fake.url,
            OPENAI_API_KEY=UPSTREAM_KEY,
            KOE_DRAIN_SECONDS=drain,
        ) as koe:
            live = open_call(koe, tenant_a, openai_agent)
            sdk_turn(live, "Hi")
            started = time.monotonic()
            sigterm(koe)
            wait_until_draining(koe)
            if second_sigterm:
                sigterm(koe)
            code = exit_code(koe, within=20)
            took = time.monotonic() - started
            live.close()
    finally:
        fake.stop()
    assert code == 0
    if not second_sigterm:
        assert took >= 2, "the live call was given its drain time"
    call = CallSession.objects.get()
    assert call.end_reason == "server_shutdown"
    assert list(call.transcript.filter(role="assistant").values_list("text", flat=True)) == [
        "Hello, you are through to Acme."
    ]
