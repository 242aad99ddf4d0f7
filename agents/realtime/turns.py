"""Whose turn it is to ask for a response, and when the agent's goodbye has played out.

The Realtime API allows one response at a time and answers ``response.create`` in order.
Koe asks for responses of its own (the greeting, after a tool's result) while the client
asks for others, so it keeps count: a request Koe wants while a response is active waits
for that response to finish, and a client's request that would land in the middle of
Koe's is held back until the way is clear. Pure bookkeeping: no I/O, the caller sends the
frames these methods return.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from agents.realtime import events

# Error codes that mean a response.create was refused (so no response follows it).
RESPONSE_REFUSALS = frozenset({"conversation_already_has_active_response"})
SERVER = "server"
CLIENT = "client"
# Bytes of audio a second, by the agent's audio format (24 kHz PCM16, 8 kHz G.711).
AUDIO_BYTES_PER_SECOND = {"pcm16": 48000, "g711_ulaw": 8000, "g711_alaw": 8000}


class ResponseTurns:
    """The response requests of one call. ``response_active`` says whether the provider
    has a response in progress (the policy follows that from the server's events)."""

    def __init__(
        self,
        response_active: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
        audio_format: str = "pcm16",
    ) -> None:
        self.response_active = response_active
        self.clock = clock
        # base64: 4 characters carry 3 bytes.
        self.base64_chars_per_second = AUDIO_BYTES_PER_SECOND.get(audio_format, 48000) * 4 / 3
        # Who asked for each response.create sent upstream and not yet created, in order.
        self.requested: deque[str] = deque()
        self.response_by: str | None = None  # who started the response in progress
        self.wanted: str | None = None  # Koe's deferred request (its instructions, or "")
        self.held: deque[str] = deque()  # clients' response.create frames held back
        self.audio_seconds = 0.0  # agent audio the current response has sent
        self.audio_started = 0.0

    def server_request(self, instructions: str | None = None) -> dict[str, Any] | None:
        """Koe wants a response: the event to send now, or None when it must wait for the
        response in progress (the latest instructions win)."""
        if self.response_active() or self.requested:
            self.wanted = instructions or self.wanted or ""
            return None
        event: dict[str, Any] = {"type": events.RESPONSE_CREATE}
        if instructions:
            event["response"] = {"instructions": instructions}
        self.requested.append(SERVER)
        return event

    def server_request_now(self, event: dict[str, Any]) -> dict[str, Any]:
        """A response.create of Koe's own sent whatever is under way (the greeting, as the
        call opens): counted, so the client's requests wait behind it."""
        self.requested.append(SERVER)
        return event

    def client_request(self, frame: str) -> bool:
        """A client's response.create: True to send it on now, False when it is held back
        because a response Koe asked for is under way (the client's turn comes next, as it
        would have had it asked a moment later)."""
        if SERVER in self.requested or (self.response_active() and self.response_by != CLIENT):
            self.held.append(frame)
            return False
        self.requested.append(CLIENT)
        return True

    def follow(self, event: dict[str, Any]) -> None:
        """A server event: responses are created in the order they were asked for (one
        nobody asked for is the provider's own, after a turn); a refused request is dropped."""
        kind = event.get("type")
        if kind == events.RESPONSE_CREATED:
            self.response_by = self.requested.popleft() if self.requested else SERVER
            self.audio_seconds = 0.0
            self.audio_started = self.clock()
        elif kind == events.RESPONSE_DONE:
            self.response_by = None
        elif kind == events.OUTPUT_AUDIO_DELTA:
            self.audio_seconds += len(event.get("delta") or "") / self.base64_chars_per_second
        elif kind == events.ERROR and self.requested:
            error = event.get("error")
            if isinstance(error, dict) and error.get("code") in RESPONSE_REFUSALS:
                self.requested.popleft()  # that response.create will never be created

    def after_response(self) -> list[str | dict[str, Any]]:
        """A response finished: Koe's deferred request, then a held client request, if the
        way is clear for them. Frames (client's, as received) and events to send in order."""
        out: list[str | dict[str, Any]] = []
        if self.wanted is not None:
            instructions, self.wanted = self.wanted, None
            request = self.server_request(instructions or None)
            if request is not None:
                out.append(request)
        if self.held and not self.requested and not self.response_active():
            self.requested.append(CLIENT)
            out.append(self.held.popleft())
        return out

    def audio_left_to_play(self) -> float:
        """Seconds of the current response's audio the caller has not heard yet (clients
        receive it faster than real time)."""
        return max(0.0, self.audio_seconds - (self.clock() - self.audio_started))
