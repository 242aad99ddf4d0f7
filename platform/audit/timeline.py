"""A call's timeline as an auditor reads it: turns, tool calls and their results, in order.

Built from what consent let the broker store: transcript items (caller and agent turns,
tool calls with their arguments, tool results) and the platform's tool invocations
(status, duration, delivery). The call page and the exports both read calls through here,
so what an auditor sees and what an export contains are the same thing.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.apps import apps
from django.db import models

from calls.models import CallSession, TranscriptItem, TranscriptRole

# The platform core refers to the tools app by label, never by import (see DESIGN.md).
TOOL_INVOCATION_MODEL = "tools.ToolInvocation"


def tool_invocation_model() -> type[models.Model]:
    return apps.get_model(TOOL_INVOCATION_MODEL)


class EntryKind:
    CALLER = "caller"
    AGENT = "agent"
    INSTRUCTIONS = "instructions"  # a system message a client added (where the agent allows)
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"


@dataclass(frozen=True)
class TimelineEntry:
    """One transcript item placed on the call's clock."""

    kind: str
    sequence: int
    offset_ms: int
    text: str
    tool_name: str = ""
    arguments: str = ""  # tool calls: the arguments, indented when they are JSON
    latency_ms: int | None = None
    interrupted: bool = False
    typed: bool = False  # sent as text by the client, not heard or spoken
    # Tool calls run by the platform: the invocation's status, duration and delivery.
    invocation: Any = None

    @property
    def speaker(self) -> str:
        return {
            EntryKind.CALLER: "Caller",
            EntryKind.AGENT: "Agent",
            EntryKind.INSTRUCTIONS: "Instructions",
            EntryKind.TOOL_CALL: "Tool call",
            EntryKind.TOOL_RESULT: "Tool result",
        }[self.kind]

    @property
    def clock(self) -> str:
        """The offset as people read it (m:ss.t)."""
        return format_offset(self.offset_ms)

    @property
    def is_tool(self) -> bool:
        return self.kind in (EntryKind.TOOL_CALL, EntryKind.TOOL_RESULT)


def pretty_json(text: str) -> str:
    """Tool arguments and results indented when they are JSON, else as they came."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def offset_ms(call: CallSession, moment: datetime) -> int:
    """Milliseconds from the start of the call to ``moment`` (never negative)."""
    return max(0, round((moment - call.started_at).total_seconds() * 1000))


def entry_kind(item: TranscriptItem, called_item_ids: set[str]) -> str:
    """Caller, agent, tool call or tool result; ``called_item_ids``: the tool calls so far.

    The broker stores a function call as a tool item with its arguments, and the output
    given back to the model as a later tool item with the same item id and the output as
    text (which may be empty).
    """
    if item.role == TranscriptRole.USER:
        return EntryKind.CALLER
    if item.role == TranscriptRole.ASSISTANT:
        return EntryKind.AGENT
    if item.role == TranscriptRole.SYSTEM:
        return EntryKind.INSTRUCTIONS
    if item.item_id and item.item_id in called_item_ids:
        return EntryKind.TOOL_RESULT
    if item.text and not item.tool_arguments:
        return EntryKind.TOOL_RESULT
    called_item_ids.add(item.item_id)
    return EntryKind.TOOL_CALL


def build_timeline(
    call: CallSession,
    items: Iterable[TranscriptItem],
    invocations: Iterable[Any] = (),
) -> list[TimelineEntry]:
    """The call's consented transcript in order, each tool call with its invocation.

    Without transcript consent the timeline is empty whatever rows exist: nothing that
    consent does not cover is shown or exported, even a row that should not have been kept.
    Invocations are matched to tool calls by function name, in order (the broker starts
    them in the order the model called them); tool calls the client ran have none.
    """
    if not call.stores_transcript:
        return []
    by_name: dict[str, deque[Any]] = defaultdict(deque)
    for invocation in sorted(invocations, key=lambda row: (row.created_at, row.pk)):
        by_name[invocation.tool_name].append(invocation)
    timeline = []
    called_item_ids: set[str] = set()
    for item in sorted(items, key=lambda row: row.sequence):
        kind = entry_kind(item, called_item_ids)
        invocation = None
        if kind == EntryKind.TOOL_CALL and by_name[item.tool_name]:
            invocation = by_name[item.tool_name].popleft()
        timeline.append(
            TimelineEntry(
                kind=kind,
                sequence=item.sequence,
                offset_ms=offset_ms(call, item.created_at),
                text=pretty_json(item.text) if kind == EntryKind.TOOL_RESULT else item.text,
                tool_name=item.tool_name,
                arguments=pretty_json(item.tool_arguments) if item.tool_arguments else "",
                latency_ms=item.latency_ms if kind == EntryKind.AGENT else None,
                interrupted=item.interrupted,
                typed=item.typed,
                invocation=invocation,
            )
        )
    return timeline


def call_timeline(call: CallSession) -> list[TimelineEntry]:
    """The timeline of one call, in two queries (none without transcript consent)."""
    if not call.stores_transcript:
        return []
    invocations = tool_invocation_model()._default_manager.filter(call=call)
    return build_timeline(call, call.transcript.all(), invocations)


def format_offset(milliseconds: int) -> str:
    """An offset into the call as m:ss.t (minutes keep counting past an hour)."""
    minutes, remainder = divmod(milliseconds, 60_000)
    return f"{minutes}:{remainder // 1000:02d}.{remainder % 1000 // 100}"
