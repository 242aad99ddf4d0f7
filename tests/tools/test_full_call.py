"""A whole spoken call: the caller asks, the agent calls the tenant's webhook, then says so.

The local provider (real VAD, Whisper, scripted engine and Piper) behind the broker's
WebSocket endpoint; the webhook is a real HTTP server on loopback, allowlisted.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from foundation import signing
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, ToolFactory
from tests.fakes.http_receiver import HttpReceiver, Reply
from tests.local.helpers import appends, assert_valid_server_events, utterance
from tests.realtime.helpers import connect, receive
from tools.invocations import ToolInvocation

pytestmark = pytest.mark.django_db(transaction=True)

BOOKING = {
    "type": "object",
    "properties": {
        "party_size": {"type": "integer", "minimum": 1, "description": "Number of guests"},
        "time": {
            "type": "string",
            "pattern": r"^([01]\d|2[0-3]):[0-5]\d$",
            "description": "Time of the booking, 24-hour HH:MM",
        },
    },
    "required": ["party_size", "time"],
}


async def until(communicator: Any, event_type: str, seen: list[dict[str, Any]]) -> None:
    while True:
        event = await receive(communicator, timeout=30)
        seen.append(event)
        if event["type"] == event_type:
            return


def test_the_agent_books_through_the_tenants_webhook_and_speaks_its_answer(
    tenant_a: TenantWorld, settings: Any
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    answer = {"message": "Table twelve is yours, for two at seven."}
    with HttpReceiver(default=Reply(body=json.dumps(answer))) as receiver:
        tool = ToolFactory(
            tenant=tenant_a.tenant,
            name="book_table",
            description="Books a table.",
            kind="webhook",
            webhook_url=receiver.url("/bookings"),
            parameters=BOOKING,
            example_phrases=["I'd like a table for two at seven", "book a table"],
        )
        agent = AgentFactory(tenant=tenant_a.tenant, greeting="", tools=[tool])

        async def scenario() -> list[dict[str, Any]]:
            communicator = await connect(
                f"/v1/realtime?model={agent.public_id}&consent=transcript&end_user=guest-7",
                [(b"authorization", f"Bearer {tenant_a.secret}".encode())],
                timeout=30,
            )
            seen: list[dict[str, Any]] = []
            await until(communicator, "session.updated", seen)
            for frame in appends(utterance("I'd like a table for two at seven.")):
                await communicator.send_to(text_data=frame)
            await until(communicator, "response.done", seen)  # the function call
            await until(communicator, "response.done", seen)  # the spoken answer
            await communicator.disconnect()
            return seen

        seen = asyncio.run(scenario())
        requests = list(receiver.requests)

    assert_valid_server_events(seen)
    [request] = requests
    body = json.loads(request.body)
    assert body["arguments"] == {"party_size": 2, "time": "19:00"}
    assert body["context"]["end_user"] == "guest-7"
    signing.verify(tool.signing_secret, request.headers["koe-signature"], request.body)
    final = [e["response"] for e in seen if e["type"] == "response.done"][-1]
    spoken = final["output"][0]["content"][0]["transcript"]
    assert "Table twelve is yours, for two at seven." in spoken
    invocation = ToolInvocation.objects.get()
    assert (invocation.status, invocation.arguments) == ("succeeded", body["arguments"])
