"""Control reaches a call on whichever process holds it: two Koe servers behind HAProxy
on the real Redis, a call on each, and a member's "End call" in the dashboard (served by
yet another process, this test's) ends both. Audio never crosses Redis; this does."""

from __future__ import annotations

import time
from contextlib import ExitStack

import orjson
import pytest
from django.urls import reverse
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from agents.models import Agent
from calls.models import CallSession
from tenancy.roles import Role
from tests.conftest import TenantWorld
from tests.deploy.test_load_balancer import both_up, wait_until
from tests.e2e.server import restartable_daphne
from tests.fakes.realtime_server import FakeRealtimeServer
from tests.live import haproxy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.haproxy, pytest.mark.redis]

UPSTREAM_KEY = "sk-test-upstream"


def test_end_call_in_the_dashboard_reaches_a_call_on_any_process(
    tenant_a: TenantWorld, openai_agent: Agent
) -> None:
    fake = FakeRealtimeServer([], expected_key=UPSTREAM_KEY).start_in_thread()
    env = {"KOE_OPENAI_REALTIME_URL": fake.url, "OPENAI_API_KEY": UPSTREAM_KEY}
    farewells: list[tuple[str, int | None]] = []
    with ExitStack() as stack:
        stack.callback(fake.stop)
        servers = {
            name: stack.enter_context(restartable_daphne(**env, KOE_INSTANCE_NAME=name))
            for name in ("web-a", "web-b")
        }
        base = stack.enter_context(haproxy({n: s.port for n, s in servers.items()}))
        wait_until(lambda: both_up(base), "HAProxy to see both servers up")

        url = f"{base.replace('http', 'ws')}/v1/realtime?model={openai_agent.public_id}"
        headers = {"Authorization": f"Bearer {tenant_a.secret}"}
        sockets = []
        for _ in range(2):  # leastconn: the second call goes to the other server
            ws = stack.enter_context(connect(url, additional_headers=headers))
            assert orjson.loads(ws.recv(timeout=10))["type"] == "session.created"
            sockets.append(ws)
        calls = list(CallSession.objects.order_by("started_at"))
        assert {call.server_instance.split("~")[0] for call in calls} == {"web-a", "web-b"}

        member = tenant_a.client_for(Role.EDITOR)
        for call in calls:
            response = member.post(reverse("dashboard:call_end", args=[call.public_id]))
            assert response.status_code in {200, 302}, response.status_code
        for ws in sockets:
            code = ""
            try:
                while True:
                    event = orjson.loads(ws.recv(timeout=10))
                    if event["type"] == "error":
                        code = event["error"]["code"]
            except ConnectionClosed as closed:
                farewells.append((code, closed.rcvd.code if closed.rcvd else None))
        deadline = time.monotonic() + 10
        while CallSession.objects.filter(status="active").exists():
            assert time.monotonic() < deadline, "a call's end was never written"
            time.sleep(0.05)

    assert [code for code, _ in farewells] == ["call_ended_operator"] * 2
    assert set(CallSession.objects.values_list("end_reason", flat=True)) == {"operator"}
