"""A live call is reachable from another process through Redis (group ``call.<id>``)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async

from agents.models import Agent
from calls.models import CallSession
from tests.conftest import TenantWorld
from tests.realtime.conftest import auth_headers
from tests.realtime.doubles import ScriptedProvider
from tests.realtime.helpers import connect, receive

ROOT = Path(__file__).resolve().parents[2]

SEND_FROM_ANOTHER_PROCESS = """
import sys, django
django.setup()
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
async_to_sync(get_channel_layer().group_send)(
    sys.argv[1], {"type": "call.end", "reason": "operator", "detail": "from another process"}
)
"""


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_message_from_another_process_reaches_the_live_call(
    tenant_a: TenantWorld, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    async def scenario() -> dict:
        communicator = await connect(
            f"/v1/realtime?model={openai_agent.public_id}", auth_headers(tenant_a.secret)
        )
        await receive(communicator)
        call = await database_sync_to_async(CallSession.objects.get)()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SEND_FROM_ANOTHER_PROCESS,
            call.group_name,
            cwd=ROOT,
            env={"DJANGO_SETTINGS_MODULE": "koe.settings", **os.environ},
        )
        assert await process.wait() == 0
        event = await receive(communicator, timeout=10)
        await communicator.disconnect()
        return event

    event = asyncio.run(scenario())
    assert event["error"]["code"] == "call_ended_operator"
    call = CallSession.objects.get()
    assert call.end_reason == "operator"
    assert call.end_detail == "from another process"


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_quiet_call_still_hears_its_group_after_a_while(
    tenant_a: TenantWorld,
    openai_agent: Agent,
    scripted_provider: type[ScriptedProvider],
    settings: Any,
) -> None:
    """The Redis layer's blocking receive waits 5 s; redis-py's default socket timeout is
    also 5 s: without a longer one, a call with no group message for 5 s crashed. Here the
    wait is shortened to 0.25 s (the socket's timeout kept at its ratio to it), so a quiet
    second spans four blocking receives."""
    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    config["receive_timeout"] = 0.25
    config["hosts"][0]["socket_timeout"] = 6 * 0.25

    async def scenario() -> dict:
        communicator = await connect(
            f"/v1/realtime?model={openai_agent.public_id}", auth_headers(tenant_a.secret)
        )
        await receive(communicator)
        call = await database_sync_to_async(CallSession.objects.get)()
        await asyncio.sleep(1.2)  # a quiet stretch longer than four blocking receives
        assert not communicator.future.done(), communicator.future.exception()
        from channels.layers import get_channel_layer

        await get_channel_layer().group_send(
            call.group_name, {"type": "call.end", "reason": "operator", "detail": "after a pause"}
        )
        event = await receive(communicator, timeout=10)
        await communicator.disconnect()
        return event

    event = asyncio.run(scenario())
    assert event["error"]["code"] == "call_ended_operator"
    assert CallSession.objects.get().end_detail == "after a pause"


@pytest.mark.redis
def test_the_redis_sockets_wait_longer_than_the_layers_blocking_receive() -> None:
    """The configuration the quiet-call test relies on, as deployments get it."""
    from koe import settings as koe_settings

    config = koe_settings.CHANNEL_LAYERS["default"]["CONFIG"]
    assert config["hosts"][0]["socket_timeout"] > 2 * config["receive_timeout"]
