"""Two Koe servers behind HAProxy, configured as deploy/haproxy.cfg: new calls are spread
over the ready ones; one drained by SIGTERM (a rolling restart) takes no new call, keeps
the one it holds to its natural end, then exits; no caller is lost."""

from __future__ import annotations

import signal
import time
from contextlib import ExitStack

import httpx
import openai
import orjson
import pytest
from websockets.sync.client import connect

from agents.models import Agent
from calls.models import CallSession
from tests.conftest import TenantWorld
from tests.e2e.server import RestartableDaphne, restartable_daphne
from tests.fakes.realtime_server import FakeRealtimeServer, Turn
from tests.live import haproxy, sdk_turn

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.haproxy]

UPSTREAM_KEY = "sk-test-upstream"
RETRYABLE = {"server_busy", "server_draining"}


def wait_until(condition: object, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def both_up(base: str) -> bool:
    """HAProxy sends requests round the servers it has up: two readyz in a row answer
    from both once both are up (their call counts are equal, so leastconn alternates)."""
    try:
        return all(httpx.get(f"{base}/readyz", timeout=2).status_code == 200 for _ in range(4))
    except httpx.TransportError:
        return False


def call_with_retry(ws_url: str, secret: str, stack: ExitStack) -> int:
    """Open a call and keep it open (so leastconn would pick the other server next, were
    it up); a refusal with close 4013 is tried again, as a client should. Returns the
    attempts it took."""
    for attempt in range(1, 40):
        ws = stack.enter_context(
            connect(ws_url, additional_headers={"Authorization": f"Bearer {secret}"})
        )
        first = orjson.loads(ws.recv(timeout=10))
        if first["type"] == "session.created":
            return attempt
        assert first["type"] == "error" and first["error"]["code"] in RETRYABLE, first
        time.sleep(0.25)
    raise AssertionError("never admitted")


def test_a_rolling_restart_behind_haproxy_loses_no_call(
    tenant_a: TenantWorld, openai_agent: Agent
) -> None:
    fake = FakeRealtimeServer(
        [Turn(user="", assistant="Hello, Acme."), Turn(user="", assistant="Still here.")] * 10,
        expected_key=UPSTREAM_KEY,
    ).start_in_thread()
    env = {"KOE_OPENAI_REALTIME_URL": fake.url, "OPENAI_API_KEY": UPSTREAM_KEY}
    with ExitStack() as stack:
        stack.callback(fake.stop)
        servers: dict[str, RestartableDaphne] = {
            name: stack.enter_context(
                restartable_daphne(**env, KOE_INSTANCE_NAME=name, KOE_DRAIN_SECONDS="60")
            )
            for name in ("web-a", "web-b")
        }
        base = stack.enter_context(haproxy({n: s.port for n, s in servers.items()}))
        wait_until(lambda: both_up(base), "HAProxy to see both servers up")

        client = openai.OpenAI(api_key=tenant_a.secret, base_url=f"{base}/v1")
        live = client.realtime.connect(
            model=openai_agent.public_id, extra_query={"consent": "transcript"}
        ).enter()
        assert sdk_turn(live, "Hi").text == "Hello, Acme."
        holder = CallSession.objects.get().server_instance.split("~")[0]
        other = next(name for name in servers if name != holder)

        # The holder is restarted: SIGTERM, as Kubernetes or compose sends.
        draining = servers[holder]
        assert draining.process is not None
        draining.process.send_signal(signal.SIGTERM)

        # New callers keep coming meanwhile, and stay: with more calls on the other server,
        # leastconn would send the next ones to the holder, had HAProxy not taken it out.
        # A refusal (before HAProxy saw the holder go unready) is retried, as 4013 asks.
        ws_url = f"{base.replace('http', 'ws')}/v1/realtime?model={openai_agent.public_id}"
        new_calls = ExitStack()
        attempts = [call_with_retry(ws_url, tenant_a.secret, new_calls) for _ in range(6)]

        # The call on the draining server is whole: it goes on, then ends as the caller
        # hangs up, and only then does its server exit.
        assert sdk_turn(live, "Hi").text == "Still here."
        assert draining.process.poll() is None
        live.close()
        exit_code = draining.process.wait(timeout=20)
        new_calls.close()

    assert len(attempts) == 6  # each admitted, some after a retry or two
    assert exit_code == 0
    first = CallSession.objects.order_by("started_at").first()
    assert first is not None and first.end_reason == "client_closed"
    later = CallSession.objects.exclude(pk=first.pk)
    assert later.count() == 6
    assert {c.server_instance.split("~")[0] for c in later} == {other}
