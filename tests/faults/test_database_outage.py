"""Drills: PostgreSQL goes away while calls are live, as they end, and as one starts.

Every answer a caller heard ends up in the database, with its usage (so it is billed):
writes wait in memory while the database is away, the end of a call is retried until it
is written, and if the server must stop first it is spooled to disk and written by the
next server. A call that starts while the database is away is refused as documented.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from agents.models import Agent
from calls.models import CallSession
from tests.conftest import TenantWorld
from tests.e2e.server import restartable_daphne
from tests.fakes.realtime_server import FakeRealtimeServer, Turn
from tests.faults.calls import LiveCall
from tests.faults.conftest import proxied_database_url
from tests.faults.network import TcpProxy

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

UPSTREAM_KEY = "sk-drill-upstream"
CALLS = 6
ANSWER = "Hello there."


@pytest.fixture
def upstream() -> FakeRealtimeServer:
    fake = FakeRealtimeServer(
        [Turn(user="Hello", assistant=ANSWER)] * 1000, expected_key=UPSTREAM_KEY
    )
    fake.start_in_thread()
    yield fake  # type: ignore[misc]
    fake.stop()


def _server_env(upstream: FakeRealtimeServer, proxy: TcpProxy, **env: str) -> dict[str, str]:
    return {
        "DATABASE_URL": proxied_database_url(proxy),
        "KOE_OPENAI_REALTIME_URL": upstream.url,
        "OPENAI_API_KEY": UPSTREAM_KEY,
        **env,
    }


def _ended(count: int, timeout: float = 30) -> list[CallSession]:
    deadline = time.monotonic() + timeout
    while True:
        calls = list(CallSession.objects.filter(status="ended").order_by("pk"))
        if len(calls) >= count:
            return calls
        assert time.monotonic() < deadline, f"{len(calls)} of {count} calls recorded as ended"
        time.sleep(0.1)


def _assert_kept_what_was_heard(callers: list[LiveCall], calls: list[CallSession]) -> None:
    heard = sorted((len(caller.answers), caller.responses) for caller in callers)
    kept = sorted(
        (call.transcript.filter(role="assistant").count(), call.usage.count()) for call in calls
    )
    assert heard == kept
    assert all(answers >= 4 for answers, _ in heard)
    assert all(call.end_reason == "client_closed" for call in calls)
    # Billed: the usage of every answer is in the call's totals.
    for call in calls:
        assert call.total_tokens == sum(row.total_tokens for row in call.usage.all()) > 0


async def _talk_through_an_outage(url: str, secret: str, proxy: TcpProxy) -> list[LiveCall]:
    """Two answers with the database up, two more with it down, then hang up (still
    down): the last answers and the end all have to wait for it."""
    stop = asyncio.Event()
    callers = [LiveCall(url, secret) for _ in range(CALLS)]
    talking = [asyncio.create_task(caller.talk(stop)) for caller in callers]
    for caller in callers:
        await caller.wait_for_responses(2)
    proxy.cut()
    for caller in callers:
        await caller.wait_for_responses(4)
    stop.set()
    await asyncio.gather(*talking)
    return callers


def test_the_database_going_away_as_calls_end_loses_nothing(
    tenant_a: TenantWorld,
    openai_agent: Agent,
    database_proxy: TcpProxy,
    upstream: FakeRealtimeServer,
) -> None:
    env = _server_env(upstream, database_proxy, KOE_END_RETRY_SECONDS="60")
    with restartable_daphne(**env) as server:
        url = server.base.replace("http", "ws") + (
            f"/v1/realtime?model={openai_agent.public_id}&consent=transcript"
        )
        callers = asyncio.run(_talk_through_an_outage(url, tenant_a.secret, database_proxy))
        time.sleep(1.5)  # the outage goes on after they hung up: their ends are retried
        assert not CallSession.objects.filter(status="ended").exists()
        database_proxy.restore()
        calls = _ended(CALLS)
    _assert_kept_what_was_heard(callers, calls)


def _spooled(folder: Path, count: int, timeout: float = 30) -> list[Path]:
    deadline = time.monotonic() + timeout
    while len(spooled := sorted(folder.glob("*.json"))) < count:
        assert time.monotonic() < deadline, f"{len(spooled)} of {count} ends were spooled"
        time.sleep(0.1)
    return spooled


def test_ends_that_outlast_the_server_are_spooled_and_written_by_the_next(
    tenant_a: TenantWorld,
    openai_agent: Agent,
    database_proxy: TcpProxy,
    upstream: FakeRealtimeServer,
    tmp_path: Path,
) -> None:
    env = _server_env(
        upstream,
        database_proxy,
        KOE_END_RETRY_SECONDS="1",
        KOE_SPOOL_DIR=str(tmp_path),
        KOE_HEARTBEAT_SECONDS="0.5",
    )
    with restartable_daphne(**env) as server:
        url = server.base.replace("http", "ws") + (
            f"/v1/realtime?model={openai_agent.public_id}&consent=transcript"
        )
        callers = asyncio.run(_talk_through_an_outage(url, tenant_a.secret, database_proxy))
        # Each end is retried for a second, then spooled. Waiting for that (rather than
        # stopping at once) keeps a hang-up the server has not read yet from being ended
        # by the stop itself, as server_shutdown.
        spooled = _spooled(tmp_path, CALLS)
        assert server.terminate() == 0  # a deploy stops it, the database still away
        assert {json.loads(path.read_text())["reason"] for path in spooled} == {"client_closed"}
        database_proxy.restore()
        server.start()  # the next server writes what the last one could not
        calls = _ended(CALLS)
    _assert_kept_what_was_heard(callers, calls)
    assert not list(tmp_path.iterdir())


def test_a_call_that_starts_while_the_database_is_away_is_refused_as_documented(
    tenant_a: TenantWorld,
    openai_agent: Agent,
    database_proxy: TcpProxy,
    upstream: FakeRealtimeServer,
) -> None:
    with restartable_daphne(**_server_env(upstream, database_proxy)) as server:
        url = server.base.replace("http", "ws") + f"/v1/realtime?model={openai_agent.public_id}"
        database_proxy.cut()

        async def attempt() -> tuple[dict[str, object], int | None]:
            async with connect(
                url, additional_headers={"Authorization": f"Bearer {tenant_a.secret}"}
            ) as socket:
                event = json.loads(await socket.recv())
                with pytest.raises(ConnectionClosed):
                    await socket.recv()
                return event, socket.close_code

        event, code = asyncio.run(attempt())
        assert event["type"] == "error"
        assert event["error"]["code"] == "server_unavailable"  # type: ignore[index]
        assert code == 4503
        database_proxy.restore()
        # Back: the next call is accepted and answered.
        caller = LiveCall(url, tenant_a.secret)

        async def one_answer() -> None:
            stop = asyncio.Event()
            talking = asyncio.create_task(caller.talk(stop))
            await caller.wait_for_responses(1)
            stop.set()
            await talking

        asyncio.run(one_answer())
        assert caller.answers == [ANSWER]
