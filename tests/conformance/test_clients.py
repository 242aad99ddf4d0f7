"""Realtime clients nobody on the team wrote, unchanged but for the base URL, against Koe.

Each runs the scenario of scenario.md and must see no ``error`` event at all: the policy
reconciles what frameworks send instead of refusing it, the greeting does not block
them, and the agent's tools (Koe runs them) are never shown as functions: hidden (the
default), or as hosted tool calls where the agent says so and the client knows them.
Then the call's record must hold what was said.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from calls.models import CallSession, TranscriptItem
from tests.conformance.conftest import CLIENTS, Site, run_client
from tests.local.helpers import show_tool_calls

pytestmark = pytest.mark.django_db(transaction=True)

# How the agent's tool calls are shown: both ways to the clients that know hosted tools.
SHOWN = pytest.mark.parametrize("tool_calls_shown", ["hidden", "hosted"])


def check_the_call(seen: dict[str, Any], *, shows_server_events: bool = True) -> None:
    """What every client must have seen, and what the call's record must hold."""
    assert seen["errors"] == [], seen["errors"]
    said = " ".join(seen["transcripts"])
    assert "noon" in said  # the typed question's answer
    assert "Your table for 2 at 19:00 is booked" in said  # the spoken request's
    types = " ".join(seen["types"])
    assert "function_call" not in types  # never asked to run a tool
    hosted = CallSession.objects.get().agent_version.config["tool_calls_shown"] == "hosted"
    if shows_server_events:
        assert ("mcp_call" in types) == hosted
    call = CallSession.objects.get()
    assert call.end_reason == "client_closed"
    rows = list(TranscriptItem.objects.filter(call=call).order_by("sequence"))
    typed = [row for row in rows if row.role == "user" and row.typed]
    assert typed and typed[0].text == "When are you open?"
    assert [row.tool_name for row in rows if row.role == "tool"][:2] == ["book_table"] * 2
    if shows_server_events:
        # The interruption: a response cancelled, or what was heard truncated.
        assert "cancelled" in seen["statuses"] or "conversation.item.truncated" in seen["types"]


@pytest.mark.openai_python
@SHOWN
def test_the_official_openai_python_sdk(
    site: Site, speech_file: Path, tool_calls_shown: str
) -> None:
    show_tool_calls(site.demo["agent_id"], tool_calls_shown)
    seen = run_client(
        [
            sys.executable,
            str(CLIENTS / "openai_python.py"),
            f"{site.base}/v1",
            site.demo["agent_id"],
            site.demo["secret_key"],
            str(speech_file),
        ]
    )
    check_the_call(seen)
    assert "conversation.item.truncated" in seen["types"]


@pytest.mark.openai_agents
@SHOWN
def test_openai_agents_realtime_agents(
    site: Site, speech_file: Path, client_venv: Path, tool_calls_shown: str
) -> None:
    show_tool_calls(site.demo["agent_id"], tool_calls_shown)
    seen = run_client(
        [
            str(client_venv),
            str(CLIENTS / "openai_agents.py"),
            site.base.replace("http", "ws") + "/v1/realtime",
            site.demo["agent_id"],
            site.demo["secret_key"],
            str(speech_file),
        ]
    )
    check_the_call(seen)
    assert not [note for note in seen["notes"] if note.startswith("ran a tool")]


@pytest.mark.openai_node
def test_the_official_openai_node_sdk_over_wss(
    tls_site: Site, speech_file: Path, node_clients: Path
) -> None:
    show_tool_calls(tls_site.demo["agent_id"], "hosted")  # the SDK's types know mcp_call
    script = node_clients / "openai_node.mjs"
    script.write_text((CLIENTS / "openai_node.mjs").read_text())  # beside its node_modules
    seen = run_client(
        [
            "node",
            str(script),
            f"{tls_site.base}/v1",
            tls_site.demo["agent_id"],
            tls_site.demo["secret_key"],
            str(speech_file),
        ],
        env={"NODE_EXTRA_CA_CERTS": str(tls_site.ca_file)},
    )
    assert seen["notes"][0].startswith("connected to wss:")
    check_the_call(seen)


@pytest.mark.pipecat
def test_a_pipecat_pipeline(site: Site, speech_file: Path, client_venv: Path) -> None:
    """The demo agent as it is: tool calls hidden (Pipecat's receive loop dies on an
    mcp_call item, whoever sends it)."""
    seen = run_client(
        [
            str(client_venv),
            str(CLIENTS / "pipecat_client.py"),
            site.base,
            site.demo["agent_id"],
            site.demo["secret_key"],
            str(speech_file),
        ]
    )
    # Pipecat shows frames, not server events: a refused truncation would have been an
    # error (fatal to Pipecat), so none after the interruption is the check here.
    assert seen["notes"] == ["interrupted", "closed"]
    check_the_call(seen, shows_server_events=False)


@pytest.mark.livekit
@SHOWN
def test_livekits_openai_realtime_plugin(
    site: Site, speech_file: Path, client_venv: Path, tool_calls_shown: str
) -> None:
    """LiveKit's plugin standalone (no room, no job). It copes with hosted tool calls as
    with hidden ones: an mcp_call item is no item of its chat context (it logs
    "unsupported item type" and leaves it out) and its events are not read."""
    show_tool_calls(site.demo["agent_id"], tool_calls_shown)
    seen = run_client(
        [
            str(client_venv),
            str(CLIENTS / "livekit_client.py"),
            site.base,
            site.demo["agent_id"],
            site.demo["secret_key"],
            str(speech_file),
        ]
    )
    check_the_call(seen)
    assert "conversation.item.truncated" in seen["types"]
    # Each generate_reply() is answered by its own response (matched by its metadata).
    assert seen["notes"].count("generate_reply answered") == 2, seen["notes"]
    assert not [note for note in seen["notes"] if note.startswith("asked to run")]
