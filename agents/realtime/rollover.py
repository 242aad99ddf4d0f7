"""Provider sessions that survive: a call outlives the provider session it started on.

A provider session can go away mid-call: the connection breaks (a network error, a 5xx),
or it reaches its time limit (OpenAI ends a Realtime session at 60 minutes with an
``error`` of code ``session_expired``, then closes it; livekit/agents#2358 and
twilio-samples/speech-assistant-openai-realtime-api-python#10 quote it). Ending the call
then would cut a caller off for something that is not theirs. Instead the call opens a
new session with the same agent configuration and carries the conversation over:

- the agent's ``session.update``, then the caller's own accepted session changes again;
- the conversation so far from the call's transcript: the most recent ``REPLAYED_ITEMS``
  entries as conversation items (the caller's words, the agent's answers, tool results),
  everything older condensed into one system message (its lines, shortened to
  ``CONDENSED_CHARS``: no model is asked to summarise, so nothing is invented);
- a response cut off by the drop is closed for the caller's client (a ``response.done``
  of status ``failed``), and the agent is asked to answer again.

The caller hears a short pause. The new session's own ``session.created`` and
``session.updated``, and the items replayed into it, are not shown to the caller's client
and not added to the transcript a second time: they are already there. Caller audio that
arrives while the new session opens is dropped (there is nowhere to send it); other
client events wait and follow the replay. Usage of every session counts, the replay's
input tokens included, and the call record counts its sessions (``provider_sessions``).

A session is also replaced before its limit, at a quiet moment (no response in progress,
nobody speaking for a second): ``session.created``'s ``expires_at`` says when, or, if it
does not, ``KOE_PROVIDER_SESSION_SECONDS`` after it opened.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from agents.realtime import events
from agents.realtime.tracker import TranscriptEntry

REPLAYED_ITEMS = 40
CONDENSED_CHARS = 6000
ITEM_TEXT_CHARS = 4000
REPLAY_ID_PREFIX = "koe_replay_"
# Replaced this long before it would expire, at the first quiet moment.
EXPIRY_MARGIN_SECONDS = 120.0
QUIET_SECONDS = 1.0
# A session that cannot be reopened after this many tries ends the call (provider_error).
OPEN_ATTEMPTS = 3
# A renewed session that is lost again within this long, or more renewals than this in
# one call, mean the provider is failing, not dropping: the call ends (provider_error).
SHORTEST_RENEWED_SESSION_SECONDS = 10.0
MAX_ROLLOVERS = 20
SESSION_EXPIRED = "session_expired"

CARRIED_OVER = (
    "This call continues from an earlier session of the same conversation (the connection "
    "was renewed). Carry on naturally from where it left off; do not greet the caller again."
)


def replay_events(transcript: list[TranscriptEntry]) -> list[dict[str, Any]]:
    """``conversation.item.create`` events that give a new session the conversation so far."""
    entries = [entry for entry in transcript if entry.text or entry.tool_arguments]
    older, recent = entries[:-REPLAYED_ITEMS], entries[-REPLAYED_ITEMS:]
    items: list[dict[str, Any]] = [_message("system", CARRIED_OVER)]
    if older:
        lines = [_line(entry) for entry in older]
        condensed = "\n".join(lines)
        if len(condensed) > CONDENSED_CHARS:
            condensed = "…\n" + condensed[-CONDENSED_CHARS:]
        items.append(_message("system", "Earlier in this call:\n" + condensed))
    for entry in recent:
        if entry.role in {"user", "assistant"} and entry.text:
            items.append(_message(entry.role, _clip(entry.text)))
        else:
            items.append(_message("system", _line(entry)))
    return [
        {
            "type": events.ITEM_CREATE,
            "item": {"id": f"{REPLAY_ID_PREFIX}{index}", **item},
        }
        for index, item in enumerate(items)
    ]


def _message(role: str, text: str) -> dict[str, Any]:
    kind = "output_text" if role == "assistant" else "input_text"
    return {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}


def _line(entry: TranscriptEntry) -> str:
    if entry.role == "tool" and entry.tool_arguments and not entry.text:
        return f"(The agent called the tool {entry.tool_name} with {_clip(entry.tool_arguments)}.)"
    if entry.role == "tool":
        return f"(The tool {entry.tool_name} answered: {_clip(entry.text)})"
    speaker = {"user": "Caller", "assistant": "Agent"}.get(entry.role, entry.role.title())
    return f"{speaker}: {_clip(entry.text)}"


def _clip(text: str) -> str:
    return text if len(text) <= ITEM_TEXT_CHARS else text[:ITEM_TEXT_CHARS] + "…"


@dataclass
class SessionClock:
    """When the current provider session should be replaced before it expires."""

    limit_seconds: float
    opened: float = field(default_factory=time.monotonic)
    expires: float | None = None  # monotonic, from session.created's expires_at

    def opened_now(self) -> None:
        self.opened, self.expires = time.monotonic(), None

    def created(self, event: dict[str, Any]) -> None:
        session = event.get("session")
        expires_at = session.get("expires_at") if isinstance(session, dict) else None
        left = expires_at - time.time() if isinstance(expires_at, int | float) else 0.0
        if left > 0 and not isinstance(expires_at, bool):  # 0, or the past: not given
            self.expires = time.monotonic() + left

    def failing(self, sessions: int) -> bool:
        """Whether losing the current session means the provider is failing."""
        if sessions > MAX_ROLLOVERS:
            return True
        return sessions > 1 and time.monotonic() - self.opened < SHORTEST_RENEWED_SESSION_SECONDS

    def due(self, now: float) -> bool:
        deadline = self.expires if self.expires is not None else self.opened + self.limit_seconds
        return now >= deadline - min(EXPIRY_MARGIN_SECONDS, self.limit_seconds / 4)


@dataclass
class ReplayFilter:
    """The new session's echoes of what Koe carried over: not the caller's news."""

    session_events: int = 0  # session.created and the session.updated answers still to come
    item_ids: set[str] = field(default_factory=set)

    def expect(self, session_updates: int, replayed: list[dict[str, Any]]) -> None:
        self.session_events = 1 + session_updates
        self.item_ids = {event["item"]["id"] for event in replayed}

    def swallows(self, event: dict[str, Any]) -> bool:
        kind = event.get("type")
        if kind in (events.SESSION_CREATED, events.SESSION_UPDATED) and self.session_events:
            self.session_events -= 1
            return True
        if not self.item_ids:
            return False
        item = event.get("item")
        item_id = item.get("id") if isinstance(item, dict) else event.get("item_id")
        return isinstance(item_id, str) and item_id.startswith(REPLAY_ID_PREFIX)


def expired(event: dict[str, Any]) -> bool:
    """The provider's notice that its session reached its time limit (it closes next)."""
    error = event.get("error")
    return (
        event.get("type") == events.ERROR
        and isinstance(error, dict)
        and error.get("code") == SESSION_EXPIRED
    )


def cut_off(response_id: str) -> dict[str, Any]:
    """A ``response.done`` for a response the old session never finished."""
    return {
        "type": events.RESPONSE_DONE,
        "event_id": f"event_koe_rollover_{int(time.time() * 1000)}",
        "response": {
            "object": "realtime.response",
            "id": response_id,
            "status": "failed",
            "status_details": {
                "type": "failed",
                "error": {
                    "type": "server_error",
                    "code": "provider_session_replaced",
                    "message": "The speech provider's session was replaced mid-response; "
                    "the agent answers again.",
                },
            },
            "output": [],
            "usage": None,
        },
    }
