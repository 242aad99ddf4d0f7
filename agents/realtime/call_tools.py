"""A call's server-side tools: run the ones the model calls, give their output back, and
keep faith with the caller about background tools whose result comes later (or not)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from django.conf import settings

from agents.realtime.session_config import late_result_note
from agents.realtime.tracker import ToolCallRequest
from foundation.call_threads import on_call_threads
from tools.dispatch import run_tool_call
from tools.functions import ModelFunction
from tools.invocations import confirm_delivery
from tools.outcomes import ToolOutcome
from tools.runner import ToolCallContext

if TYPE_CHECKING:
    from agents.realtime.call import Call

# Seconds beyond a tool's own timeout that the dispatch of a tool call may take.
DISPATCH_GRACE_SECONDS = 5
PUTTING_THROUGH = (
    "Tell the caller in one short sentence that you are putting them through to a person now."
)
WORKING_ON_IT = (
    "A tool you called is still running. Tell the caller in one short sentence that you are "
    "working on it; its result will follow."
)


class CallTools:
    def __init__(self, call: Call, functions: dict[str, ModelFunction]) -> None:
        self.call = call
        self.functions = functions  # the agent's server-side tools, by function name
        # Background tools whose result the call waits for: function call id -> (the
        # request, when to stop waiting); those it stopped waiting for.
        self.awaited: dict[str, tuple[ToolCallRequest, float]] = {}
        self.given_up: set[str] = set()

    async def run(self, requests: list[ToolCallRequest]) -> None:
        """The tool calls of one response, in order; then a response with their results."""
        call = self.call
        answered = False
        for request in requests:
            outcome = await self._outcome(request)
            if call.ended:
                return
            if outcome.end_call:
                call.hang_up_after_response = True
            if outcome.transfer_reason is not None and call.can_transfer():
                call.transfer_after_response = True
                outcome = ToolOutcome.success({"ok": True, "message": PUTTING_THROUGH})
            if outcome.pending:
                # A background tool: its output arrives later (result()), or the caller
                # is told the truth when it has not come within the tool's time.
                wait = self.functions[request.name].tool.timeout_seconds
                wait += settings.KOE_BACKGROUND_TOOL_GRACE_SECONDS
                self.awaited[request.call_id] = (request, call.tracker.clock() + wait)
                continue
            call.tracker.tool_result(request, outcome.output)
            await self._send_output(request.call_id, outcome.output, ok=outcome.ok)
            answered = True
        if call.ended:
            return
        # Only background tools: the model tells the caller it is on it meanwhile.
        await call.request_response(None if answered else WORKING_ON_IT)

    async def _outcome(self, request: ToolCallRequest) -> ToolOutcome:
        call = self.call
        function = self.functions[request.name]
        context = ToolCallContext(
            tenant_id=call.grant.tenant_public_id,
            agent_id=call.grant.agent_public_id,
            call_id=call.grant.call_public_id,
            tool=function.tool,
            function_call_id=request.call_id,
            arguments=request.arguments,
            function_name=function.name,
            parameters=function.parameters,
            remote_name=function.remote_name,
        )
        try:
            # The tool is bounded by its own timeout; this only guards the dispatch.
            return await asyncio.wait_for(
                run_tool_call(context), function.tool.timeout_seconds + DISPATCH_GRACE_SECONDS
            )
        except TimeoutError:
            return ToolOutcome.failure("timeout", f"{request.name} took too long.")
        except Exception as error:  # a failing tool must not end the call
            call.log("tool %s failed: %r", request.name, error)
            return ToolOutcome.failure("tool_failed", f"{request.name} failed.")

    async def result(self, message: dict[str, Any]) -> None:
        """A background tool's output for this call, from a Celery worker.

        Confirmed back (the worker marks it delivered only then, and sends it again
        otherwise); a result already given is not given twice. One that comes after the
        caller was told the tool did not answer is passed on as news."""
        call = self.call
        if call.ended:
            return
        output = str(message.get("output") or "")
        call_id = str(message.get("function_call_id") or "")
        name = str(message.get("name") or "")
        awaited = self.awaited.pop(call_id, None)
        if call_id in self.given_up:
            self.given_up.discard(call_id)
            call.tracker.tool_result(ToolCallRequest(call_id, name, ""), output)
            await call.send_upstream(late_result_note(name, output))
            await call.request_response()
        elif awaited is not None:
            call.tracker.tool_result(awaited[0], output)
            if message.get("end_call"):
                call.hang_up_after_response = True
            await self._send_output(call_id, output)
            await call.request_response()
        # else: a repeat of a result this call already has
        invocation = str(message.get("invocation") or "")
        if invocation:
            call.spawn(self._confirm_delivery(invocation))

    async def _confirm_delivery(self, invocation: str) -> None:
        try:
            await on_call_threads(confirm_delivery)(invocation)
        except Exception as error:  # the worker sends it again; this call ignores repeats
            self.call.log("could not confirm tool result %s: %r", invocation, error)

    async def give_up_on_late(self) -> None:
        """Background tools whose result has not come in their time: the caller is told."""
        call = self.call
        clock = call.tracker.clock()
        late = [call_id for call_id, (_, due) in self.awaited.items() if due <= clock]
        for call_id in late:
            request, _ = self.awaited.pop(call_id)
            self.given_up.add(call_id)
            outcome = ToolOutcome.failure(
                "no_answer",
                f"{request.name} did not answer in time. Tell the caller honestly that it could "
                "not be completed right now; if its result comes later, you will be told.",
            )
            call.log("background tool %s gave no answer in time", request.name)
            call.tracker.tool_result(request, outcome.output)
            await self._send_output(call_id, outcome.output, ok=False)
        if late:
            await call.request_response()

    async def _send_output(self, call_id: str, output: str, *, ok: bool = True) -> None:
        call = self.call
        await call.send_upstream(
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": call_id, "output": output},
            }
        )
        for finished in call.presenter.completed(call_id, output, failed=not ok):
            await call.send_event(finished)
