"""The realtime endpoint: one Channels consumer per end-user connection.

It authenticates the caller, opens the agent's provider session with the agent's
configuration, relays events both ways through the policy, runs server-side tools,
records what consent allows, and ends the call for any of its end reasons. Audio never
crosses the channel layer: the consumer holds its own provider socket, and the call's
group ``call.<id>`` carries only control messages (e.g. an operator's "end call").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import orjson
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch
from django.conf import settings
from django.utils.timezone import now

from agents.realtime import events, shutdown
from agents.realtime.access import AccessDenied, Caller, CallGrant, open_call
from agents.realtime.errors import (
    CLOSE_CODES,
    CLOSE_NORMAL,
    CLOSE_PROVIDER_ERROR,
    CLOSE_SERVER_ERROR,
    CLOSE_UNAVAILABLE,
    ClientEventRejected,
    error_event,
)
from agents.realtime.keeping import CallKeeping
from agents.realtime.policy import PolicyState, oversized, parse_client_frame
from agents.realtime.presentation import ServerToolPresenter
from agents.realtime.providers import ProviderConnection, ProviderError, get_provider
from agents.realtime.session_config import (
    agent_settings,
    greeting_response,
    late_result_note,
    session_update,
)
from agents.realtime.tracker import CallTracker, ProviderFault, ToolCallRequest
from billing import budgets
from calls.metrics import (
    ACTIVE_CALLS,
    CALLS_ENDED,
    CALLS_REFUSED,
    CALLS_STARTED,
    CLIENT_EVENTS_REJECTED,
    LAYER_OUTAGES,
    RELAY_LATENCY,
    UPSTREAM_ERRORS,
)
from calls.models import EndReason
from calls.recordings import CallRecorder, start_recorder
from foundation.frames import OVERSIZED
from tools.dispatch import run_tool_call
from tools.functions import functions_by_name
from tools.invocations import confirm_delivery
from tools.outcomes import ToolOutcome
from tools.runner import ToolCallContext

logger = logging.getLogger("koe.realtime")

TOKEN_SUBPROTOCOL = "openai-insecure-api-key."
WATCHDOG_INTERVAL_SECONDS = 0.5

# How a call that ends for each reason is closed (anything else: 1000).
END_CLOSE_CODES: dict[str, int] = {
    EndReason.PROVIDER_ERROR: CLOSE_PROVIDER_ERROR,
    EndReason.SERVER_ERROR: CLOSE_SERVER_ERROR,
}
SESSION_EVENTS = frozenset({events.SESSION_CREATED, events.SESSION_UPDATED})
# Error codes that mean a response.create was refused (so no response follows it).
RESPONSE_REFUSALS = frozenset({"conversation_already_has_active_response"})
# Waiting out a channel-layer outage: the first retry, doubling up to the longest.
LAYER_RETRY_FIRST_SECONDS = 0.25
LAYER_RETRY_LONGEST_SECONDS = 2.0
# How long a caller whose call ended waits for the end to be written before being told.
RECORD_BEFORE_CLOSE_SECONDS = 2.0
MAX_GOODBYE_SECONDS = 15.0
WORKING_ON_IT = (
    "A tool you called is still running. Tell the caller in one short sentence that you are "
    "working on it; its result will follow."
)


def caller_from_scope(scope: dict[str, Any]) -> Caller:
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers", [])
    }
    query = {
        key: values[-1] for key, values in parse_qs(scope.get("query_string", b"").decode()).items()
    }
    authorization = headers.get("authorization", "")
    secret = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
    token = query.get("token") or query.get("client_secret") or ""
    for protocol in scope.get("subprotocols") or []:
        if protocol.startswith(TOKEN_SUBPROTOCOL):
            token = protocol[len(TOKEN_SUBPROTOCOL) :]
    return Caller(
        secret=secret,
        session_token=token,
        agent_id=query.get("model", ""),
        origin=headers.get("origin", ""),
        consent=query.get("consent", ""),
        consent_method=query.get("consent_method", ""),
        end_user=query.get("end_user", ""),
    )


def _chosen_subprotocol(offered: list[str]) -> str | None:
    # Browsers fail the handshake unless the server picks one of the offered protocols.
    if not offered:
        return None
    return "realtime" if "realtime" in offered else offered[0]


class RealtimeConsumer(AsyncWebsocketConsumer):
    grant: CallGrant
    upstream: ProviderConnection
    tracker: CallTracker
    policy: PolicyState
    keeping: CallKeeping

    async def connect(self) -> None:
        self.ended = False
        self.live = False  # accepted and relaying (the provider session is open)
        self.hang_up_after_response = False  # the end_call tool was used
        self.response_wanted: str | None = None  # a response.create deferred (its instructions)
        # Who asked for each response.create sent upstream and not yet created ("server",
        # "client"), who started the response in progress, and clients' response.create
        # events held back while a response the server started is in the way.
        self.requested: deque[str] = deque()
        self.response_by: str | None = None
        self.held_responses: deque[str] = deque()
        self.response_audio_seconds = 0.0
        self.response_audio_started = 0.0
        self.background: set[asyncio.Task[Any]] = set()
        # Background tools whose result the call waits for: function call id -> (the
        # request, when to stop waiting); those it stopped waiting for.
        self.awaited_tools: dict[str, tuple[ToolCallRequest, float]] = {}
        self.given_up_tools: set[str] = set()
        self.recorder: CallRecorder | None = None  # the call's audio, under recording consent
        self.accepted = False
        caller = caller_from_scope(self.scope)
        try:
            self.grant = await database_sync_to_async(open_call)(caller)
        except AccessDenied as denied:
            CALLS_REFUSED.labels(denied.code).inc()
            logger.info("realtime refused code=%s agent=%s", denied.code, caller.agent_id)
            self.ended = True  # frames racing the close are ignored
            await self._refuse(denied.message, denied.code, denied.error_type)
            return
        except Exception:
            # The database (most likely) is away: refuse as documented, never a 500.
            logger.exception("realtime set-up failed agent=%s", caller.agent_id)
            CALLS_REFUSED.labels("server_unavailable").inc()
            self.ended = True
            await self._refuse(
                "Calls cannot be set up right now; please try again in a moment.",
                "server_unavailable",
                "server_error",
                close_code=CLOSE_UNAVAILABLE,
            )
            return
        self.keeping = CallKeeping(self.grant, self._log)
        try:
            self.upstream = await get_provider(self.grant.provider).connect(
                self.grant.config, self.grant.credentials
            )
        except Exception as error:
            self.ended = True  # the call never started: nothing to relay or record later
            UPSTREAM_ERRORS.labels(self.grant.provider).inc()
            if not isinstance(error, ProviderError):
                logger.exception("provider connect failed tenant=%s call=%s", *self._ids())
            await self._record_end(EndReason.PROVIDER_ERROR, str(error), ended_at=now())
            self._log("provider unavailable: %s", error)
            await self._refuse(
                "The agent is unavailable right now (its speech provider could not be reached).",
                "provider_unavailable",
                "server_error",
                close_code=CLOSE_UNAVAILABLE,
            )
            return

        config = self.grant.config
        self.policy = PolicyState(
            agent=agent_settings(config, self.grant.agent_public_id),
            allow_overrides=self.grant.allow_overrides,
            client_functions=self.grant.client_functions,
            strict=self.grant.strict,
            max_frame_bytes=settings.KOE_REALTIME_MAX_FRAME_BYTES,
        )
        server_tools = frozenset(functions_by_name(config.tools))
        self.tracker = CallTracker(server_tools=server_tools, policy=self.policy)
        self.presenter = ServerToolPresenter(server_tools, hosted=self.grant.shows_tool_calls)
        self.started = time.monotonic()
        await self._join_group()
        await self._accept()
        ACTIVE_CALLS.labels(self.grant.provider).inc()
        self.live = True
        self.keeping.tracker = self.tracker  # from now on there is a transcript to keep
        CALLS_STARTED.labels(self.grant.provider).inc()
        shutdown.track(self)
        if self.grant.stores_transcript:  # recording consent implies transcript consent
            # Before connect() returns, so no caller frame is dispatched unrecorded.
            self.recorder = await start_recorder(
                self.grant.call_id,
                self.grant.tenant_public_id,
                self.grant.call_public_id,
                config.audio_format,
            )
        self._log(
            "call started agent=%s provider=%s", self.grant.agent_public_id, self.grant.provider
        )

        try:
            await self.upstream.send(orjson.dumps(session_update(config)).decode())
            greeting = greeting_response(config) if self.grant.greets else None
            if greeting is not None:
                self.requested.append("server")
                await self.upstream.send(orjson.dumps(greeting).decode())
        except ProviderError as error:
            await self._end(EndReason.PROVIDER_ERROR, str(error), notify=True)
            return
        self._spawn(self._relay_upstream())
        self._spawn(self._watch_limits())
        if self.recorder is not None:
            self._spawn(self.recorder.flush_periodically())  # "flush*": finished in _end

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self._serve(scope, receive, send)
        except asyncio.CancelledError:
            # Daphne cancels every application when it shuts down, and waits for them:
            # record the end and what the call produced before the process goes.
            if hasattr(self, "grant") and not self.ended:
                await self._end(EndReason.SERVER_SHUTDOWN, "The server shut down.")
            raise

    async def _serve(self, scope: Any, receive: Any, send: Any) -> None:
        """Channels' AsyncConsumer.__call__, but with control messages read through
        ``_control_message``: the channel layer (Redis) going away must not end a call
        whose audio never goes through it."""
        self.scope = scope
        self.base_send = send
        self.rejoin_group = False  # the channel layer failed: join call.<id> again
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        with contextlib.suppress(StopConsumer):
            await await_many_dispatch([receive, self._control_message], self.dispatch)

    async def _control_message(self) -> dict[str, Any]:
        """The next message for this call from the channel layer, waiting out an outage:
        the call carries on, and rejoins its group (``call.<id>``, lost when Redis
        restarts) as soon as the layer answers again."""
        delay = LAYER_RETRY_FIRST_SECONDS
        while True:
            if self.rejoin_group:
                await self._join_group()
            try:
                message: dict[str, Any] = await self.channel_layer.receive(self.channel_name)
                return message
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not self.rejoin_group:
                    self._log("channel layer lost (%r); the call goes on", error)
                    LAYER_OUTAGES.inc()
                self.rejoin_group = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, LAYER_RETRY_LONGEST_SECONDS)

    async def _join_group(self) -> None:
        """Join ``call.<id>``; on failure try again later (the call does not depend on it)."""
        if not hasattr(self, "grant") or self.ended:
            return
        try:
            await self.channel_layer.group_add(self.grant.group_name, self.channel_name)
        except Exception as error:
            if not self.rejoin_group:
                self._log("could not join the call's group (%r); retrying", error)
            self.rejoin_group = True
            return
        if self.rejoin_group:
            self._log("rejoined the call's group")
        self.rejoin_group = False

    async def dispatch(self, message: dict[str, Any]) -> None:
        try:
            # Channels runs close_old_connections() in a worker thread before every handler.
            # At 50 audio events a second per call that thread hop is most of the relay's
            # cost, and this consumer's own database work already goes through
            # database_sync_to_async, which closes old connections in its thread.
            if message["type"] == "websocket.receive":
                if OVERSIZED in message:  # koe.server read past a frame over the limit
                    await self._refuse_oversized(message[OVERSIZED])
                else:
                    await self.websocket_receive(message)
            else:
                await super().dispatch(message)
        except StopConsumer:
            raise
        except Exception as error:
            # A bug anywhere (a provider, the tracker, the recorder) ends this call now,
            # recorded and closed, rather than leaving it active against the tenant's cap.
            await self._fail(error, message.get("type", "?"))

    # --- client -> provider ------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.ended:
            return
        started = time.perf_counter()
        frame = text_data if text_data is not None else bytes_data
        try:
            client_event = parse_client_frame(frame, self.policy)
        except ClientEventRejected as rejected:
            CLIENT_EVENTS_REJECTED.labels(rejected.code).inc()
            await self._send_event(rejected.to_event())
            return
        self.tracker.client_event(client_event.type)
        if client_event.ignored:
            self._log("ignored the client's %s (a platform-run tool call)", client_event.type)
            return
        if client_event.dropped:
            self._log("dropped client settings %s", ", ".join(client_event.dropped))
        if client_event.added:
            self.tracker.client_added(client_event.added)
        if client_event.function_output is not None:
            self.tracker.client_function_output(*client_event.function_output)
        if self.recorder is not None:
            self._record_client_event(client_event.type, client_event.event)
        if client_event.type == events.RESPONSE_CREATE:
            if self._server_response_in_the_way():
                # The greeting (or a response Koe asked for) is under way: the client's
                # turn comes next, as it would have had it asked a moment later.
                self.held_responses.append(client_event.frame(text_data or ""))
                return
            self.requested.append("client")
        try:
            # The frame as received, unless the policy took settings out of it.
            await self.upstream.send(client_event.frame(text_data or ""))
        except ProviderError as error:
            await self._end(EndReason.PROVIDER_ERROR, str(error), notify=True)
            return
        RELAY_LATENCY.labels("client_to_provider").observe(time.perf_counter() - started)

    async def _refuse_oversized(self, size: int) -> None:
        if self.ended:
            return
        rejected = oversized(size, self.policy.max_frame_bytes)
        CLIENT_EVENTS_REJECTED.labels(rejected.code).inc()
        await self._send_event(rejected.to_event())

    # --- provider -> client ------------------------------------------------------------
    async def _relay_upstream(self) -> None:
        try:
            async for frame in self.upstream:
                started = time.perf_counter()
                try:
                    event = orjson.loads(frame)
                except orjson.JSONDecodeError:
                    self._log("provider sent malformed JSON; dropped")
                    continue
                if not isinstance(event, dict):
                    self._log("provider sent a non-object event; dropped")
                    continue
                outcome = self.tracker.server_event(event)
                self._follow_responses(event)
                if event.get("type") in SESSION_EVENTS:
                    frame = self._presented_session(event)
                presented = self.presenter.present(event)
                frames = (
                    [frame] if presented is None else [orjson.dumps(e).decode() for e in presented]
                )
                for shown in frames:
                    if not await self._deliver(shown):
                        await self._end(EndReason.CLIENT_CLOSED, "The client went away.")
                        return
                RELAY_LATENCY.labels("provider_to_client").observe(time.perf_counter() - started)
                if isinstance(outcome, ProviderFault):
                    await self._end(EndReason.PROVIDER_ERROR, outcome.message, notify=True)
                    return
                if outcome:
                    self._spawn(self._run_tools(outcome))
                self._follow_audio(event)
                if event.get("type") == events.RESPONSE_DONE:
                    self._spawn(self.keeping.flush_in_passing())
                    if not outcome:
                        self._spawn(self._after_response())
            if not self.ended:
                await self._end(
                    EndReason.PROVIDER_ERROR, "The provider closed the session.", notify=True
                )
        except ProviderError as error:
            if not self.ended:
                await self._end(EndReason.PROVIDER_ERROR, str(error), notify=True)
        except Exception as error:  # a relay that dies must not leave the call hanging
            await self._fail(error, "relay")

    def _follow_responses(self, event: dict[str, Any]) -> None:
        """Who started the response in progress (responses are created in the order they
        were asked for; one nobody asked for is the provider's own, after a turn)."""
        kind = event.get("type")
        if kind == events.RESPONSE_CREATED:
            self.response_by = self.requested.popleft() if self.requested else "server"
        elif kind == events.RESPONSE_DONE:
            self.response_by = None
        elif kind == events.ERROR and self.requested:
            error = event.get("error")
            if isinstance(error, dict) and error.get("code") in RESPONSE_REFUSALS:
                self.requested.popleft()  # that response.create will never be created

    def _server_response_in_the_way(self) -> bool:
        return "server" in self.requested or (
            self.policy.response_active and self.response_by != "client"
        )

    async def _release_held_response(self) -> None:
        """A client's response.create held back, now that the way is clear."""
        if not self.held_responses or self.requested or self.policy.response_active:
            return
        self.requested.append("client")
        await self.upstream.send(self.held_responses.popleft())

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

    def _follow_audio(self, event: dict[str, Any]) -> None:
        """How much agent audio the current response has sent (for a polite hang-up)."""
        kind = event.get("type")
        if kind == events.RESPONSE_CREATED:
            self.response_audio_seconds = 0.0
            self.response_audio_started = time.monotonic()
        elif kind == events.OUTPUT_AUDIO_DELTA:
            # base64 of 24 kHz PCM16: 4 characters carry 3 bytes; 48,000 bytes a second.
            self.response_audio_seconds += len(event.get("delta") or "") * 3 / 4 / 48000
            if self.recorder is not None and isinstance(event.get("delta"), str):
                self.recorder.agent_audio(str(event.get("item_id") or ""), event["delta"])

    def _record_client_event(self, kind: str, event: dict[str, Any]) -> None:
        """Caller audio and barge-in truncations for the recording (the policy checked
        their shapes); an O(1) append, so the relay stays fast."""
        if self.recorder is None:
            return
        if kind == events.INPUT_AUDIO_APPEND:
            self.recorder.caller_audio(event["audio"])
        elif kind == events.ITEM_TRUNCATE:
            self.recorder.truncate(event["item_id"], event["audio_end_ms"])

    # --- server-side tools -------------------------------------------------------------
    async def _run_tools(self, requests: list[ToolCallRequest]) -> None:
        functions = functions_by_name(self.grant.config.tools)
        answered = False
        for request in requests:
            function = functions[request.name]
            context = ToolCallContext(
                tenant_id=self.grant.tenant_public_id,
                agent_id=self.grant.agent_public_id,
                call_id=self.grant.call_public_id,
                tool=function.tool,
                function_call_id=request.call_id,
                arguments=request.arguments,
                function_name=function.name,
                parameters=function.parameters,
                remote_name=function.remote_name,
            )
            timeout = function.tool.timeout_seconds + 5
            try:
                # The tool is bounded by its own timeout; this only guards the dispatch.
                outcome = await asyncio.wait_for(run_tool_call(context), timeout)
            except TimeoutError:
                outcome = ToolOutcome.failure("timeout", f"{request.name} took too long.")
            except Exception as error:  # a failing tool must not end the call
                self._log("tool %s failed: %r", request.name, error)
                outcome = ToolOutcome.failure("tool_failed", f"{request.name} failed.")
            if self.ended:
                return
            if outcome.end_call:
                self.hang_up_after_response = True
            if outcome.pending:
                # A background tool: its output arrives later (tool_result), or the caller
                # is told the truth when it has not come within the tool's time.
                wait = function.tool.timeout_seconds
                wait += settings.KOE_BACKGROUND_TOOL_GRACE_SECONDS
                self.awaited_tools[request.call_id] = (request, self.tracker.clock() + wait)
                continue
            self.tracker.tool_result(request, outcome.output)
            await self._send_function_output(request.call_id, outcome.output, ok=outcome.ok)
            answered = True
        if self.ended:
            return
        if answered:
            await self._request_response()
        else:
            # Only background tools: the model tells the caller it is on it meanwhile.
            await self._request_response(instructions=WORKING_ON_IT)

    async def tool_result(self, message: dict[str, Any]) -> None:
        """Group message from a Celery worker: a background tool's output for this call.

        Confirmed back (the worker marks it delivered only then, and sends it again
        otherwise); a result already given is not given twice. One that comes after the
        caller was told the tool did not answer is passed on as news."""
        if self.ended:
            return
        output = str(message.get("output") or "")
        call_id = str(message.get("function_call_id") or "")
        name = str(message.get("name") or "")
        awaited = self.awaited_tools.pop(call_id, None)
        if call_id in self.given_up_tools:
            self.given_up_tools.discard(call_id)
            self.tracker.tool_result(ToolCallRequest(call_id, name, ""), output)
            await self.upstream.send(orjson.dumps(late_result_note(name, output)).decode())
            await self._request_response()
        elif awaited is not None:
            request = awaited[0]
            self.tracker.tool_result(request, output)
            if message.get("end_call"):
                self.hang_up_after_response = True
            await self._send_function_output(call_id, output)
            await self._request_response()
        # else: a repeat of a result this call already has
        invocation = str(message.get("invocation") or "")
        if invocation:
            self._spawn(self._confirm_delivery(invocation))

    async def _confirm_delivery(self, invocation: str) -> None:
        try:
            await database_sync_to_async(confirm_delivery)(invocation)
        except Exception as error:  # the worker sends it again; this call ignores repeats
            self._log("could not confirm tool result %s: %r", invocation, error)

    async def _give_up_on_tools(self) -> None:
        """Background tools whose result has not come in their time: the caller is told."""
        now = self.tracker.clock()
        late = [call_id for call_id, (_, due) in self.awaited_tools.items() if due <= now]
        for call_id in late:
            request, _ = self.awaited_tools.pop(call_id)
            self.given_up_tools.add(call_id)
            outcome = ToolOutcome.failure(
                "no_answer",
                f"{request.name} did not answer in time. Tell the caller honestly that it could "
                "not be completed right now; if its result comes later, you will be told.",
            )
            self._log("background tool %s gave no answer in time", request.name)
            self.tracker.tool_result(request, outcome.output)
            await self._send_function_output(call_id, outcome.output, ok=False)
        if late:
            await self._request_response()

    async def _send_function_output(self, call_id: str, output: str, *, ok: bool = True) -> None:
        item = {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": call_id, "output": output},
        }
        await self.upstream.send(orjson.dumps(item).decode())
        for finished in self.presenter.completed(call_id, output, failed=not ok):
            await self._send_event(finished)

    async def _request_response(self, instructions: str | None = None) -> None:
        """Ask for a response now, or once the one in progress is done (the API allows one)."""
        if self.policy.response_active or self.requested:
            self.response_wanted = instructions or self.response_wanted or ""
            return
        event: dict[str, Any] = {"type": "response.create"}
        if instructions:
            event["response"] = {"instructions": instructions}
        self.requested.append("server")
        await self.upstream.send(orjson.dumps(event).decode())

    async def _after_response(self) -> None:
        """A response finished: hang up if the agent said goodbye, or make a deferred request."""
        if self.hang_up_after_response:
            # Let the goodbye play out: the client received it faster than real time.
            playing = max(
                0.0, self.response_audio_seconds - (time.monotonic() - self.response_audio_started)
            )
            await asyncio.sleep(min(playing, MAX_GOODBYE_SECONDS))
            await self._end(EndReason.AGENT, "The agent ended the call.")
            return
        if self.response_wanted is not None:
            instructions, self.response_wanted = self.response_wanted, None
            await self._request_response(instructions or None)
        await self._release_held_response()

    # --- limits and control messages -----------------------------------------------------
    async def _watch_limits(self) -> None:
        max_duration = self.grant.config.max_call_duration_seconds
        idle_timeout = self.grant.config.idle_timeout_seconds
        budget_every = float(settings.KOE_BUDGET_CHECK_SECONDS)
        budget_checked = self.tracker.clock()
        while not self.ended:
            await asyncio.sleep(WATCHDOG_INTERVAL_SECONDS)
            if self.awaited_tools:
                await self._give_up_on_tools()
            now = self.tracker.clock()
            # The tenant's spending, every few seconds rather than every tick: a cache read.
            if budget_every > 0 and now - budget_checked >= budget_every:
                budget_checked = now
                try:
                    budget = await database_sync_to_async(budgets.budget_of)(self.grant.tenant_id)
                except Exception:  # the other limits must still be watched
                    logger.exception("budget check failed tenant=%s call=%s", *self._ids())
                else:
                    if budget.ends_live_calls:
                        await self._end(
                            EndReason.BUDGET, "The monthly spending limit was reached.", notify=True
                        )
                        return
            if now - self.started >= max_duration:
                await self._end(
                    EndReason.MAX_DURATION, "The call reached its maximum duration.", notify=True
                )
                return
            if idle_timeout and now - self.tracker.last_activity >= idle_timeout:
                await self._end(
                    EndReason.IDLE_TIMEOUT, "The call was idle for too long.", notify=True
                )
                return

    async def end_for_shutdown(self) -> None:
        await self._end(EndReason.SERVER_SHUTDOWN, "The server shut down.", notify=True)

    async def call_end(self, message: dict[str, Any]) -> None:
        """Group message {"type": "call.end", "reason": ...} from any process."""
        reason = message.get("reason") or EndReason.OPERATOR
        if reason not in EndReason.values:
            reason = EndReason.OPERATOR
        await self._end(reason, str(message.get("detail") or "Ended by an operator."), notify=True)

    # --- ending ----------------------------------------------------------------------------
    async def disconnect(self, code: int) -> None:
        if hasattr(self, "grant") and not self.ended:
            await self._end(EndReason.CLIENT_CLOSED, f"Client closed the connection ({code}).")

    async def _fail(self, error: BaseException, where: str) -> None:
        """The one way out for a fault in Koe: logged with the tenant and call, the call
        ended as ``server_error`` (its transcript so far kept), the caller told."""
        logger.error("call failed in %s tenant=%s call=%s", where, *self._ids(), exc_info=error)
        if not hasattr(self, "grant"):
            self.ended = True
            await self._refuse("An internal error ended the call.", "server_error", "server_error")
            return
        await self._end(EndReason.SERVER_ERROR, "An internal error ended the call.", notify=True)

    async def _end(self, reason: str, detail: str, *, notify: bool = False) -> None:
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
            if hasattr(self, "upstream"):
                with contextlib.suppress(Exception):
                    await self.upstream.close()
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(self.grant.group_name, self.channel_name)
        if reason != EndReason.CLIENT_CLOSED:
            await self._tell_the_end(reason, detail, notify=notify)
        try:
            await asyncio.shield(recording)
        except asyncio.CancelledError:
            await recording
            raise

    async def _tell_the_end(self, reason: str, detail: str, *, notify: bool) -> None:
        if notify:
            error_type = (
                "server_error"
                if reason in (EndReason.PROVIDER_ERROR, EndReason.SERVER_ERROR)
                else "invalid_request_error"
            )
            if not self.accepted:  # ended while connecting: the client must still hear why
                await self._accept()
            await self._send_event(
                error_event(detail, f"call_ended_{reason}", error_type=error_type)
            )
        await self._close(END_CLOSE_CODES.get(reason, CLOSE_NORMAL))

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
        self._log("call ended reason=%s detail=%s", reason, detail)

    # --- helpers ---------------------------------------------------------------------------
    async def _refuse(
        self, message: str, code: str, error_type: str, close_code: int | None = None
    ) -> None:
        # Accept first so the client can read why (a rejected handshake has no body).
        await self._accept()
        await self._send_event(error_event(message, code, error_type=error_type))
        await self._close(close_code or CLOSE_CODES.get(error_type, CLOSE_SERVER_ERROR))

    async def _accept(self) -> None:
        if not self.accepted:
            self.accepted = True
            await self.accept(subprotocol=_chosen_subprotocol(self.scope.get("subprotocols") or []))

    async def _close(self, code: int) -> None:
        try:
            await self.close(code=code)
        except Exception as error:  # the client may be gone already: nothing left to do
            logger.debug("close failed tenant=%s call=%s: %r", *self._ids(), error)

    async def _deliver(self, frame: str) -> bool:
        """Send one frame to the client; False when the client is gone."""
        try:
            await self.send(text_data=frame)
        except Exception as error:
            logger.debug("send failed tenant=%s call=%s: %r", *self._ids(), error)
            return False
        return True

    async def _send_event(self, event: dict[str, Any]) -> None:
        await self._deliver(orjson.dumps(event).decode())

    def _spawn(self, coroutine: Any) -> None:
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
            self._spawn(self._fail(error, f"task {task.get_name()}"))

    def _log(self, message: str, *args: Any) -> None:
        # Structured enough to grep and ship: every line names its tenant and call.
        logger.info(message + " tenant=%s call=%s", *args, *self._ids())

    def _ids(self) -> tuple[str, str]:
        grant = getattr(self, "grant", None)
        return (grant.tenant_public_id, grant.call_public_id) if grant else ("-", "-")
