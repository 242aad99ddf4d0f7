"""The demo restaurant under a real Daphne, spoken to by the official openai SDK."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import openai
import pytest

from calls.models import CallSession, UsageRecord
from dashboard.management.commands.seed_demo import seed_demo
from tests.live import daphne_server
from tests.local.helpers import utterance

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_openai_sdk_books_a_table_by_voice_on_a_fresh_daphne() -> None:
    demo = seed_demo()
    events: list[Any] = []
    # KOE_LOCAL_WARM_UP=1: the server loads its models at start, as in production.
    with daphne_server(KOE_LOCAL_WARM_UP="1") as base:
        client = openai.OpenAI(api_key=demo["secret_key"], base_url=f"{base}/v1")
        with client.realtime.connect(
            model=demo["agent_id"], extra_query={"consent": "transcript"}
        ) as connection:
            audio = utterance("I'd like a table for two at seven.")
            responses = 0
            for event in connection:  # the SDK parses every event into its own types
                events.append(event)
                if event.type == "error":
                    raise AssertionError(event.error.message)
                if event.type != "response.done":
                    continue
                responses += 1
                if responses == 1:  # after the greeting, the caller speaks
                    for start in range(0, len(audio), 1920):
                        chunk = base64.b64encode(audio[start : start + 1920]).decode()
                        connection.input_audio_buffer.append(audio=chunk)
                if responses == 3:  # the tool call, then the spoken confirmation
                    break
        deadline = time.monotonic() + 10
        while CallSession.objects.filter(status="ended").count() == 0:
            assert time.monotonic() < deadline, "the call was never recorded as ended"
            time.sleep(0.05)

    spoken = [e.transcript for e in events if e.type == "response.output_audio_transcript.done"]
    assert spoken[0].startswith("Hello, you've reached Koe Bistro")
    assert "Your table for 2 at 19:00 is booked" in spoken[-1]
    # Koe runs the agent's tool; the demo agent does not show it (tool_calls_shown is
    # "hidden"): the response that asked for it is done with nothing in its output.
    assert not [e for e in events if "function_call" in e.type or "mcp_call" in e.type]
    assert [len(e.response.output or []) for e in events if e.type == "response.done"][1] == 0
    booked = CallSession.objects.get().transcript.filter(role="tool").exclude(tool_arguments="")
    assert [json.loads(row.tool_arguments) for row in booked] == [
        {"party_size": 2, "time": "19:00"}
    ]
    # usage of every response was recorded, at the local provider's token-equivalents
    usage = list(UsageRecord.objects.order_by("created_at"))
    assert [record.provider for record in usage] == ["local"] * 3
    assert usage[0].output_tokens > 0  # the spoken greeting
