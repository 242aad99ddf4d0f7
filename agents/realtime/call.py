"""The call core: one live call, whatever connection its caller is on.

A ``Call`` holds the agent's configuration (from its ``CallGrant``), the provider session,
the policy the caller's events go through, the tracker of its transcript and usage, its
tools, whose turn it is to respond, its limits and budget, its recording and its end.
A transport (the OpenAI-protocol WebSocket, carriers' media streams, WebRTC; SIP next)
gives it the caller's events with ``client_frame`` and takes the events for the caller
through the small ``CallTransport`` interface. It knows nothing of Channels.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import orjson
from django.conf import settings
from django.utils.timezone import now

from agents.realtime import events, shutdown, watchdog
from agents.realtime.access import CallGrant
from agents.realtime.call_tools import CallTools
from agents.realtime.call_transport import (
    PLAYED_EVENTS,
    CallTransport,
    EventTransport,
    PlayingTransport,
    TransferringTransport,
)
from agents.realtime.errors import ClientEventRejected, error_event
from agents.realtime.keeping import CallKeeping
from agents.realtime.policy import PolicyState, oversized, parse_client_frame
from agents.realtime.presentation import ServerToolPresenter
from agents.realtime.provider_session import ProviderSession
from agents.realtime.providers import ProviderError
from agents.realtime.session_config import agent_settings, greeting_response, session_update
from agents.realtime.sideband import CallSideband
from agents.realtime.tracker import CallTracker, ProviderFault
from agents.realtime.turns import ResponseTurns
from calls.metrics import (
    ACTIVE_CALLS,
    CALLS_ENDED,
    CALLS_STARTED,
    CLIENT_EVENTS_REJECTED,
    RELAY_LATENCY,
    UPSTREAM_ERRORS,
)
from calls.models import EndReason
from calls.recordings import CallRecorder, start_recorder
from tools.functions import functions_by_name

logger = logging.getLogger("koe.realtime")

SESSION_EVENTS = frozenset({events.SESSION_CREATED, events.SESSION_UPDATED})
# How long a caller whose call ended waits for the end to be written before being told.
RECORD_BEFORE_CLOSE_SECONDS = 2.0
MAX_GOODBYE_SECONDS = 15.0
# The relay's latency histograms, labelled once (not on each of 50 events a second).
CLIENT_TO_PROVIDER = RELAY_LATENCY.labels("client_to_provider")
PROVIDER_TO_CLIENT = RELAY_LATENCY.labels("provider_to_client")
# The ends that are Koe's or the provider's fault, told to the caller as server errors.
SERVER_FAULTS = frozenset({EndReason.PROVIDER_ERROR, EndReason.SERVER_ERROR})
# Raw caller audio (append_audio): base64 only, so it can be spliced into the event.
BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
APPEND_PREFIX = '{"type":"' + events.INPUT_AUDIO_APPEND + '","audio":"'
APPEND_SUFFIX = '"}'


TRANSFER_FAILED = (
    "The transfer to a person did not go through. Apologise briefly, and offer to take a "
    "message or help in another way."
)


class Call:
    """One live call. ``connect_provider()``, then ``start()``; the transport feeds it
    ``client_frame``/``oversized_frame`` and control messages; it ends exactly once."""

    def __init__(self, grant: CallGrant, transport: CallTransport) -> None:
        self.grant = grant
        self.config = grant.config
        self.transport = transport
        self.ended = False
        self.live = False  # started: the provider session is open and relaying
        self.keeping = CallKeeping(grant, self.log)
        self.policy = PolicyState(
            agent=agent_settings(self.config, grant.agent_public_id),
            allow_overrides=grant.allow_overrides,
            client_functions=grant.client_functions,
            strict=grant.strict,
            max_frame_bytes=settings.KOE_REALTIME_MAX_FRAME_BYTES,
        )
        self.tools = CallTools(self, functions_by_name(self.config.tools))
        server_tools = frozenset(self.tools.functions)
        self.tracker = CallTracker(server_tools=server_tools, policy=self.policy)
        self.presenter = ServerToolPresenter(server_tools, hosted=grant.shows_tool_calls)
        self.turns = ResponseTurns(
            lambda: self.policy.response_active, audio_format=self.config.audio_format
        )
        self.hang_up_after_response = False  # the end_call tool was used
        self.transfer_after_response = False  # transfer_to_human, on a line that can
        self.leaving_voicemail = False  # an answering machine: the message, then hang up
        self.recorder: CallRecorder | None = None  # the call's audio, under recording consent
        self.background: set[asyncio.Task[Any]] = set()
        self.started = time.monotonic()
        self.event_transport: EventTransport | None = (
            transport if hasattr(transport, "deliver_event") else None  # type: ignore[assignment]
        )
        self.player: PlayingTransport | None = (
            transport if hasattr(transport, "play") else None  # type: ignore[assignment]
        )
        # Renewed when it drops or nears its limit (provider_session.py).
        self.provider = ProviderSession(self)
        self.sideband = CallSideband(self)  # the tenant's servers that joined the call

    # --- opening ---------------------------------------------------------------------------
    async def connect_provider(self) -> None:
        """Open the provider session. If it cannot be opened, the call's end is recorded
        (``provider_error``) and ProviderError raised: the transport refuses the caller."""
        try:
            await self.provider.open()
        except Exception as error:
            self.ended = True  # the call never started: nothing to relay or record later
            UPSTREAM_ERRORS.labels(self.grant.provider).inc()
            if not isinstance(error, ProviderError):
                logger.exception("provider connect failed tenant=%s call=%s", *self.ids())
            await self._record_end(EndReason.PROVIDER_ERROR, str(error), ended_at=now())
            self.log("provider unavailable: %s", error)
            raise ProviderError(str(error)) from error

    async def start(self) -> None:
        """The caller is connected: configure the session, greet, and start relaying."""
        self.started = time.monotonic()
        ACTIVE_CALLS.labels(self.grant.provider).inc()
        self.live = True
        self.keeping.tracker = self.tracker  # from now on there is a transcript to keep
        CALLS_STARTED.labels(self.grant.provider).inc()
        shutdown.track(self)
        if self.grant.stores_transcript:  # recording consent implies transcript consent
            # Before start() returns, so no caller frame is relayed unrecorded.
            self.recorder = await start_recorder(
                self.grant.call_id,
                self.grant.tenant_public_id,
                self.grant.call_public_id,
                self.config.audio_format,
            )
        grant = self.grant
        self.log("call started agent=%s provider=%s", grant.agent_public_id, grant.provider)
        try:
            await self.send_upstream(session_update(self.config))
            greeting = greeting_response(self.config) if self.grant.greets else None
            if greeting is not None:
                await self.send_upstream(self.turns.server_request_now(greeting))
        except ProviderError as error:
            await self.end(EndReason.PROVIDER_ERROR, str(error), notify=True)
            return
        self.spawn(self.relay_upstream())
        self.spawn(watchdog.watch(self))
        if self.recorder is not None:
            self.spawn(self.recorder.flush_periodically())  # "flush*": finished in end()

    # --- caller -> provider ----------------------------------------------------------------
    async def client_frame(
        self,
        frame: str | bytes,
        *,
        policy: PolicyState | None = None,
        reply: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        """One frame from the caller (or, with its ``policy`` and ``reply``, from a server
        on the sideband), through the policy to the provider."""
        if self.ended:
            return
        started = time.perf_counter()
        try:
            client_event = parse_client_frame(frame, policy or self.policy)
        except ClientEventRejected as rejected:
            CLIENT_EVENTS_REJECTED.labels(rejected.code).inc()
            await (reply or self.send_event)(rejected.to_event())
            return
        self.tracker.client_event(client_event.type)
        if client_event.ignored:
            self.log("ignored the client's %s (a platform-run tool call)", client_event.type)
            return
        if client_event.dropped:
            self.log("dropped client settings %s", ", ".join(client_event.dropped))
        if client_event.added:
            self.tracker.client_added(client_event.added)
        if client_event.function_output is not None:
            self.tracker.client_function_output(*client_event.function_output)
        if self.recorder is not None:
            self._record_client_event(client_event.type, client_event.event)
        # The frame as received, unless the policy took settings out of it.
        text = client_event.frame(frame if isinstance(frame, str) else "")
        if client_event.type == events.RESPONSE_CREATE and not self.turns.client_request(text):
            return  # held back until the response Koe asked for is done
        if await self.provider.send(text, client_event.type, from_client=True):
            CLIENT_TO_PROVIDER.observe(time.perf_counter() - started)

    async def append_audio(self, payload: str) -> None:
        """Caller audio from a transport that carries it raw (a carrier's media stream):
        what a client's plain ``input_audio_buffer.append`` does, without the JSON round
        trip (50 of these a second per call)."""
        if self.ended:
            return
        started = time.perf_counter()
        if len(payload) > self.policy.max_frame_bytes or not BASE64.fullmatch(payload):
            self.log("caller audio that is not base64 was dropped")
            return
        self.tracker.client_event(events.INPUT_AUDIO_APPEND)
        if self.recorder is not None:
            self.recorder.caller_audio(payload)
        # Spliced safely: the payload is only base64's characters.
        frame = APPEND_PREFIX + payload + APPEND_SUFFIX
        if await self.provider.send(frame, events.INPUT_AUDIO_APPEND, from_client=True):
            CLIENT_TO_PROVIDER.observe(time.perf_counter() - started)

    async def oversized_frame(self, size: int) -> None:
        """The transport read past a frame over the limit: the caller is told, the call goes on."""
        if self.ended:
            return
        await self._reject(oversized(size, self.policy.max_frame_bytes))

    async def _reject(self, rejected: ClientEventRejected) -> None:
        """A client event refused: the caller gets the error event, the call goes on."""
        CLIENT_EVENTS_REJECTED.labels(rejected.code).inc()
        await self.send_event(rejected.to_event())

    def _record_client_event(self, kind: str, event: dict[str, Any]) -> None:
        """Caller audio and barge-in truncations for the recording (the policy checked
        their shapes); an O(1) append, so the relay stays fast."""
        assert self.recorder is not None
        if kind == events.INPUT_AUDIO_APPEND:
            self.recorder.caller_audio(event["audio"])
        elif kind == events.ITEM_TRUNCATE:
            self.recorder.truncate(event["item_id"], event["audio_end_ms"])

    # --- provider -> caller ----------------------------------------------------------------
    async def relay_upstream(self) -> None:
        """The current provider session's events to the caller, until it or the call ends."""
        upstream = self.provider.upstream
        try:
            async for frame in upstream:
                if not await self.relay_event(frame):
                    return
            detail = "The provider closed the session."
        except ProviderError as error:
            detail = str(error)
        except Exception as error:  # a relay that dies must not leave the call hanging
            await self.fail(error, "relay")
            return
        # A session replaced already (its successor has its own relay), or the call over.
        stale = upstream is not self.provider.upstream or self.ended
        if not stale and not await self.provider.renew(detail):
            await self.end(EndReason.PROVIDER_ERROR, detail, notify=True)

    async def relay_event(self, frame: str) -> bool:
        """One provider event to the caller, and what follows from it; False once ended."""
        started = time.perf_counter()
        try:
            event = orjson.loads(frame)
        except orjson.JSONDecodeError:
            self.log("provider sent malformed JSON; dropped")
            return True
        if not isinstance(event, dict):
            self.log("provider sent a non-object event; dropped")
            return True
        if not self.provider.follow(event):
            return True
        outcome = self.tracker.server_event(event)
        self.turns.follow(event)
        if self.sideband.channels:
            await self.sideband.forward(event, frame)
        if not await self._deliver(event, frame):
            await self.end(EndReason.CLIENT_CLOSED, "The client went away.")
            return False
        PROVIDER_TO_CLIENT.observe(time.perf_counter() - started)
        if isinstance(outcome, ProviderFault):
            await self.end(EndReason.PROVIDER_ERROR, outcome.message, notify=True)
            return False
        if outcome:
            self.spawn(self.tools.run(outcome))
        if self.recorder is not None and event.get("type") == events.OUTPUT_AUDIO_DELTA:
            delta = event.get("delta")
            if isinstance(delta, str):
                self.recorder.agent_audio(str(event.get("item_id") or ""), delta)
        if event.get("type") == events.RESPONSE_DONE:
            self.spawn(self.keeping.flush_in_passing())
            if not outcome:
                self.spawn(self._after_response())
        return True

    async def _deliver(self, event: dict[str, Any], frame: str) -> bool:
        """A provider event to the caller, as its transport takes it; False: they are gone."""
        if self.event_transport is not None:
            return await self.event_transport.deliver_event(event)
        kind = event.get("type")
        if self.player is not None and kind in PLAYED_EVENTS and self.player.play(event):
            return True
        if kind in SESSION_EVENTS:
            frame = self._presented_session(event)
        presented = self.presenter.present(event)
        frames = [frame] if presented is None else [orjson.dumps(e).decode() for e in presented]
        for shown in frames:
            if not await self.transport.deliver(shown):
                return False
        return True

    def _presented_session(self, event: dict[str, Any]) -> str:
        """session.created/updated as this caller sees it: the agent's id as the model (the
        client asked for it by that name), and for browsers without the agent's consent,
        no instructions or tool definitions (the tenant's prompt is its work)."""
        session = event.get("session")
        if isinstance(session, dict):
            session["model"] = self.grant.agent_public_id
            if not self.grant.shows_configuration:
                session["instructions"] = ""
                session["tools"] = []
        return orjson.dumps(event).decode()

    # --- responses -------------------------------------------------------------------------
    async def request_response(self, instructions: str | None = None) -> None:
        """Ask for a response now, or once the one in progress is done (the API allows one)."""
        request = self.turns.server_request(instructions)
        if request is not None:
            await self.send_upstream(request)

    async def _after_response(self) -> None:
        """A response finished: hang up if the agent said goodbye, or make a deferred request."""
        ending = self.hang_up_after_response or self.transfer_after_response
        # A request of Koe's still waiting goes first (the voicemail message, asked for
        # while the greeting was being cut short): the end comes after it.
        if ending and self.turns.wanted is None:
            # Let the goodbye play out: the client received it faster than real time.
            await asyncio.sleep(min(self.turns.audio_left_to_play(), MAX_GOODBYE_SECONDS))
            if self.transfer_after_response:
                await self._transfer()
                return
            if self.leaving_voicemail:
                await self.end(EndReason.VOICEMAIL, "The agent left a voicemail message.")
                return
            await self.end(EndReason.AGENT, "The agent ended the call.")
            return
        for request in self.turns.after_response():
            if isinstance(request, str):  # a client's, as it sent it
                await self.provider.send(request, events.RESPONSE_CREATE, from_client=True)
            else:
                await self.send_upstream(request)

    # --- handing the caller on -------------------------------------------------------------
    def can_transfer(self) -> bool:
        """Whether transfer_to_human moves this caller to a person now (a phone line and
        an agent with a transfer number), rather than asking staff to follow up."""
        return bool(self.config.transfer_number) and hasattr(self.transport, "transfer")

    async def _transfer(self) -> None:
        self.transfer_after_response = False
        target = self.config.transfer_number
        transport: TransferringTransport = self.transport  # type: ignore[assignment]
        if await transport.transfer(target):
            await self.end(EndReason.TRANSFERRED, f"Transferred to {target}.")
            return
        self.log("transfer to a person failed")
        await self.request_response(TRANSFER_FAILED)

    async def leave_voicemail(self, message: str) -> None:
        """An answering machine took the call: say ``message`` after the beep and hang up,
        or hang up at once when there is none (once: a second verdict changes nothing)."""
        if self.ended or self.leaving_voicemail:
            return
        if not message:
            await self.end(EndReason.VOICEMAIL, "An answering machine answered.")
            return
        self.leaving_voicemail = self.hang_up_after_response = True
        if self.policy.response_active:
            await self.send_upstream({"type": events.RESPONSE_CANCEL})
        await self.request_response(
            f"You reached an answering machine. Say exactly this, and nothing else: {message}"
        )

    # --- ending ----------------------------------------------------------------------------
    async def end_for_shutdown(self) -> None:
        await self.end(EndReason.SERVER_SHUTDOWN, "The server shut down.", notify=True)

    async def end_by_request(self, reason: str, detail: str) -> None:
        """An end asked for from outside the call (an operator, another process)."""
        if reason not in EndReason.values:
            reason = EndReason.OPERATOR
        await self.end(reason, detail or "Ended by an operator.", notify=True)

    async def fail(self, error: BaseException, where: str) -> None:
        """The one way out for a fault in Koe: logged with the tenant and call, the call
        ended as ``server_error`` (its transcript so far kept), the caller told."""
        logger.error("call failed in %s tenant=%s call=%s", where, *self.ids(), exc_info=error)
        await self.end(EndReason.SERVER_ERROR, "An internal error ended the call.", notify=True)

    async def end(self, reason: str, detail: str, *, notify: bool = False) -> None:
        """End the call (once): record its end, close the provider session, tell the caller."""
        if self.ended:
            return
        self.ended = True
        current = asyncio.current_task()
        for task in list(self.background):
            if task is not current and not task.get_name().startswith("flush"):
                task.cancel()
        # Record first, and let nothing cancel the recording: on shutdown Daphne cancels
        # every application and waits for it, so a cancelled end still gets written. If
        # the database is slow or away, the caller is told after a moment while the end
        # keeps being retried (and spooled if it must be).
        recording = asyncio.ensure_future(self._record_end(reason, detail, ended_at=now()))
        try:
            await asyncio.wait_for(asyncio.shield(recording), RECORD_BEFORE_CLOSE_SECONDS)
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            await recording
            raise
        finally:
            await self.provider.close()
        await self.sideband.ended()
        farewell = None
        if notify and reason != EndReason.CLIENT_CLOSED:
            error_type = "server_error" if reason in SERVER_FAULTS else "invalid_request_error"
            farewell = error_event(detail, f"call_ended_{reason}", error_type=error_type)
        await self.transport.ended(reason, farewell)
        try:
            await asyncio.shield(recording)
        except asyncio.CancelledError:
            await recording
            raise

    async def _record_end(self, reason: str, detail: str, *, ended_at: datetime) -> None:
        """Write what the call still holds and its end, durably (``CallKeeping``). (Inline
        tool runs it cut short are cancelled by the tools app when the end is committed.)"""
        if self.recorder is not None:
            # Before the call is marked ended: retention treats parts of ended calls as
            # orphans. finish() never raises; a recording it cannot write is marked failed.
            await self.recorder.finish()
        await self.keeping.write_end(reason, detail, ended_at=ended_at)
        if self.live:
            ACTIVE_CALLS.labels(self.grant.provider).dec()
        CALLS_ENDED.labels(reason).inc()
        if reason == EndReason.PROVIDER_ERROR:
            UPSTREAM_ERRORS.labels(self.grant.provider).inc()
        self.log("call ended reason=%s detail=%s", reason, detail)

    # --- helpers ---------------------------------------------------------------------------
    async def send_upstream(self, event: dict[str, Any]) -> None:
        """One of Koe's own events for the provider session (``ProviderSession.send``)."""
        kind = str(event.get("type", ""))
        await self.provider.send(orjson.dumps(event).decode(), kind, from_client=False)

    async def send_event(self, event: dict[str, Any]) -> None:
        await self.transport.deliver(orjson.dumps(event).decode())

    def spawn(self, coroutine: Any) -> None:
        name = getattr(coroutine, "__name__", "task")
        task = asyncio.create_task(coroutine, name=name.lstrip("_"))
        self.background.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.background.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None and not self.ended:
            self.spawn(self.fail(error, f"task {task.get_name()}"))

    def log(self, message: str, *args: Any) -> None:
        # Structured enough to grep and ship: every line names its tenant and call.
        logger.info(message + " tenant=%s call=%s", *args, *self.ids())

    def ids(self) -> tuple[str, str]:
        return self.grant.tenant_public_id, self.grant.call_public_id
