"""Drill: the speech provider's connection breaks mid-call, under Koe's real server, with
the official openai SDK as the caller. The call goes on in a new provider session with
the conversation carried over; the caller's SDK sees no error and no second session."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest

from agents.models import Agent
from calls.models import CallSession
from tests.conftest import TenantWorld
from tests.e2e.server import restartable_daphne
from tests.fakes.realtime_server import FakeRealtimeServer, Turn
from tests.live import sdk_turn

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

UPSTREAM_KEY = "sk-test-upstream"


def test_a_provider_connection_that_breaks_mid_call_is_replaced_unnoticed(
    tenant_a: TenantWorld, openai_agent: Agent
) -> None:
    fake = FakeRealtimeServer(
        [
            Turn(user="Do you have a table tonight?", assistant="Yes, at eight."),
            Turn(user="Book it for two.", assistant="Booked for two at eight."),
        ],
        expected_key=UPSTREAM_KEY,
    ).start_in_thread()
    try:
        with restartable_daphne(
            KOE_OPENAI_REALTIME_URL=fake.url, OPENAI_API_KEY=UPSTREAM_KEY
        ) as server:
            client = openai.OpenAI(api_key=tenant_a.secret, base_url=f"{server.base}/v1")
            with client.realtime.connect(
                model=openai_agent.public_id, extra_query={"consent": "transcript"}
            ) as connection:
                first = sdk_turn(connection, "Do you have a table tonight?")
                assert fake._loop is not None
                asyncio.run_coroutine_threadsafe(fake.drop(), fake._loop).result(5)
                deadline = time.monotonic() + 10
                while len(fake.connections) < 2:
                    assert time.monotonic() < deadline, "no new provider session was opened"
                    time.sleep(0.05)
                second = sdk_turn(connection, "Book it for two.")
            # The caller hangs up; the server records the end before it is stopped.
            deadline = time.monotonic() + 10
            while not CallSession.objects.filter(status="ended").exists():
                assert time.monotonic() < deadline, "the call's end was never written"
                time.sleep(0.05)
    finally:
        fake.stop()
    assert first.text == "Yes, at eight."
    assert second.text == "Booked for two at eight."
    assert "error" not in second.types and "session.created" not in second.types
    call = CallSession.objects.get()
    assert call.provider_sessions == 2
    assert call.end_reason == "client_closed"
    assert list(call.transcript.order_by("sequence").values_list("role", "text")) == [
        ("user", "Do you have a table tonight?"),
        ("assistant", "Yes, at eight."),
        ("user", "Book it for two."),
        ("assistant", "Booked for two at eight."),
    ]
