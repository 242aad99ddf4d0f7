"""A call's provider session: opened, fed, and renewed when it goes away (rollover.py).

``ProviderSession`` owns the connection to the speech provider for one ``Call``: what is
sent to it (and what is held while a new session opens), what it says about itself
(``session.created``'s expiry, its echoes of a replayed conversation, its notice that it
expired), and the renewal that replaces it mid-call with the conversation carried over.
The call relays the provider's events to the caller; this object decides where the
caller's events go.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson
from django.conf import settings

from agents.realtime import events
from agents.realtime.providers import ProviderConnection, ProviderError, get_provider
from agents.realtime.rollover import (
    OPEN_ATTEMPTS,
    QUIET_SECONDS,
    ReplayFilter,
    SessionClock,
    cut_off,
    expired,
    replay_events,
)
from agents.realtime.session_config import session_update
from agents.realtime.turns import CLIENT
from calls.metrics import PROVIDER_SESSIONS_RENEWED
from calls.models import CallSession, EndReason
from foundation.call_threads import on_call_threads

if TYPE_CHECKING:
    from agents.realtime.call import Call

UPSTREAM_CLOSE_SECONDS = 1.0
# Replayed into a new session, in order (the latest few: each one merges).
SESSION_UPDATES_KEPT = 50


class ProviderSession:
    """The provider session of one call, renewed when it drops or nears its limit."""

    upstream: ProviderConnection

    def __init__(self, call: Call) -> None:
        self.call = call
        self.count = 1  # sessions this call has had
        self.clock = SessionClock(float(settings.KOE_PROVIDER_SESSION_SECONDS))
        self.replay_filter = ReplayFilter()
        self.renewing: asyncio.Future[bool] | None = None
        # The client's events while a session opens, with their types.
        self.held_frames: list[tuple[str, str]] = []
        self.client_session_updates: deque[str] = deque(maxlen=SESSION_UPDATES_KEPT)
        self.response_wanted = False  # a response was asked for while a session opened
        self.response_id = ""  # the response in progress (to close it if it is cut off)
        self.caller_speaking = False

    async def open(self) -> None:
        """Open the first session (raises what the provider raises)."""
        self.upstream = await self._connect()

    async def _connect(self) -> ProviderConnection:
        grant = self.call.grant
        return await get_provider(grant.provider).connect(self.call.config, grant.credentials)

    @property
    def is_open(self) -> bool:
        return hasattr(self, "upstream")

    # --- to the provider -------------------------------------------------------------------
    async def send(self, frame: str, kind: str, *, from_client: bool) -> bool:
        """One frame for the provider session; a session that is gone is renewed, with the
        frame held for the new one where it still means something. False: not sent."""
        if from_client and kind == events.SESSION_UPDATE:
            self.client_session_updates.append(frame)
        if self.renewing is None:
            try:
                await self.upstream.send(frame)
                return True
            except ProviderError as error:
                self._hold(frame, kind, from_client)
                if not await self.renew(str(error)):
                    await self.call.end(EndReason.PROVIDER_ERROR, str(error), notify=True)
                return False
        self._hold(frame, kind, from_client)
        return False

    def _hold(self, frame: str, kind: str, from_client: bool) -> None:
        """What a frame becomes while the session is renewed: caller audio has nowhere to
        go; Koe's tool outputs are carried over by the replay, its response requests by
        one request after it; the client's other events wait for the new session."""
        if kind == events.INPUT_AUDIO_APPEND:
            return
        if kind == events.RESPONSE_CREATE and not from_client:
            self.response_wanted = True
        elif from_client:
            requested = self.call.turns.requested
            if kind == events.RESPONSE_CREATE and requested and requested[-1] == CLIENT:
                requested.pop()  # counted again when the new session is sent it
            self.held_frames.append((kind, frame))

    # --- from the provider -----------------------------------------------------------------
    def follow(self, event: dict[str, Any]) -> bool:
        """The session's own news, before the caller's client sees an event: False for
        events that are not for it (a new session's echoes of the carried-over
        conversation, the old one's notice that it expired)."""
        kind = event.get("type")
        if kind == events.SESSION_CREATED:
            self.clock.created(event)
        if self.replay_filter.swallows(event):
            return False
        if expired(event):
            self.call.log("the provider session expired; renewing it")
            self.call.spawn(self.renew("the provider session expired"))
            return False
        if kind == events.RESPONSE_CREATED:
            response = event.get("response")
            self.response_id = str(response.get("id", "")) if isinstance(response, dict) else ""
        elif kind == events.SPEECH_STARTED:
            self.caller_speaking = True
        elif kind in (events.SPEECH_STOPPED, events.INPUT_AUDIO_COMMITTED):
            self.caller_speaking = False
        return True

    def due_for_renewal(self, clock: float) -> bool:
        """Near its limit, at a moment to replace it unnoticed: nobody speaking, nothing
        asked for."""
        call = self.call
        return (
            self.clock.due(clock)
            and not call.policy.response_active
            and not call.turns.requested
            and not self.caller_speaking
            and clock - call.tracker.last_activity >= QUIET_SECONDS
        )

    # --- renewal ---------------------------------------------------------------------------
    async def renew(self, reason: str) -> bool:
        """Replace the provider session with a new one that has the conversation so far;
        True when the call goes on (callers that find a renewal under way wait for it)."""
        if self.call.ended:
            return False
        if self.renewing is not None:
            return await asyncio.shield(self.renewing)
        if self.clock.failing(self.count):
            self.call.log("provider session lost again (%s); the provider is failing", reason)
            return False
        self.renewing = asyncio.get_running_loop().create_future()
        renewed = False
        try:
            renewed = await self._renew(reason)
        finally:
            self.renewing.set_result(renewed)
            self.renewing = None
        if renewed and self.response_wanted:
            # A response cut off, or asked for meanwhile: the agent answers in the new one.
            self.response_wanted = False
            await self.call.request_response()
        return renewed

    async def _renew(self, reason: str) -> bool:
        call = self.call
        call.log("provider session lost (%s); opening another", reason)
        await self.close()
        if call.policy.response_active or call.turns.requested:
            self.response_wanted = True
        if call.policy.response_active:
            # The caller's client saw the response start: it is told it ended.
            await call.relay_event(orjson.dumps(cut_off(self.response_id)).decode())
        call.turns.requested.clear()  # asked of the old session: never to be created
        upstream = None
        for attempt in range(1, OPEN_ATTEMPTS + 1):
            try:
                upstream = await self._connect()
                break
            except Exception as error:
                call.log("opening a provider session failed (%r), try %d", error, attempt)
                await asyncio.sleep(0.25 * attempt)
        if upstream is None:
            return False
        if call.ended:  # the call ended while the session opened: nobody will use it
            await close_quickly(upstream)
            return False
        self.upstream = upstream
        self.count += 1
        self.clock.opened_now()
        replayed = replay_events(call.tracker.transcript)
        self.replay_filter.expect(len(self.client_session_updates) + 1, replayed)
        held, self.held_frames = self.held_frames, []
        try:
            await upstream.send(orjson.dumps(session_update(call.config)).decode())
            for frame in self.client_session_updates:
                await upstream.send(frame)
            for event in replayed:
                await upstream.send(orjson.dumps(event).decode())
            for kind, frame in held:
                if kind == events.RESPONSE_CREATE:
                    call.turns.requested.append(CLIENT)
                await upstream.send(frame)
        except ProviderError as error:
            call.log("the new provider session failed at once: %s", error)
            return False
        call.spawn(call.relay_upstream())
        PROVIDER_SESSIONS_RENEWED.labels(call.grant.provider).inc()
        call.spawn(self._count_sessions())
        call.log("provider session renewed (%d items carried over)", len(replayed))
        return True

    async def close(self) -> None:
        if self.is_open:
            await close_quickly(self.upstream)

    async def _count_sessions(self) -> None:
        sessions, call_id = self.count, self.call.grant.call_id
        await on_call_threads(
            lambda: CallSession.objects.filter(pk=call_id, provider_sessions__lt=sessions).update(
                provider_sessions=sessions
            )
        )()


async def close_quickly(upstream: ProviderConnection) -> None:
    """Close a provider session, waiting at most a moment: a broken connection's closing
    handshake may never be answered (websockets would wait 10 s)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(upstream.close(), UPSTREAM_CLOSE_SECONDS)
