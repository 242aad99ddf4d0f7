"""What running a tool produced: the output for the model, and what else happened.

Every kind of tool (mock, webhook, built-in, MCP) answers with a ToolOutcome. ``output``
is the text given back to the model as the function call's output: JSON, either the
result or ``{"error": {"code", "message"}}``, so a model (or the scripted engine) can tell
the caller what went wrong and ask again. Failures are outcomes, never exceptions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tools.spec import ToolSpec


@dataclass(frozen=True)
class HttpExchange:
    """One HTTP request and its response, as the dashboard's "Test tool" shows them."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str
    status: int | None = None  # None: no response (refused, timed out, unreachable)
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""
    duration_ms: int = 0


@dataclass(frozen=True)
class ToolOutcome:
    output: str  # given to the model as the function call's output
    ok: bool = True
    error_code: str = ""  # e.g. invalid_arguments, timeout, http_error, blocked_address
    # Built-ins that act on the call itself:
    end_call: bool = False  # hang up once the agent has said its goodbye
    transfer_reason: str | None = None  # a human should take over (reason given)
    exchanges: tuple[HttpExchange, ...] = ()  # what was sent and received, in order
    # A background tool was queued: its output reaches the call later, not now.
    pending: bool = False

    @classmethod
    def success(cls, result: Any, **extra: Any) -> ToolOutcome:
        output = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
        return cls(output=output, **extra)

    @classmethod
    def failure(
        cls, code: str, message: str, *, details: list[str] | None = None, **extra: Any
    ) -> ToolOutcome:
        error: dict[str, Any] = {"code": code, "message": message}
        if details:
            error["details"] = details
        output = json.dumps({"error": error}, ensure_ascii=False)
        return cls(output=output, ok=False, error_code=code, **extra)


@dataclass(frozen=True)
class ToolRequest:
    """One invocation to execute: the tool as the call's agent version saw it, and more."""

    tool: ToolSpec  # the tool as the agent version knows it (no secrets)
    arguments: dict[str, Any]  # validated against the tool's parameters schema
    tenant_id: str  # public ids
    agent_id: str
    call_id: str  # "" for a test run from the dashboard
    function_call_id: str
    end_user: str = ""
    time_zone: str = "UTC"  # the tenant's

    @property
    def idempotency_key(self) -> str:
        """The same for every retry of one function call: a receiver books once."""
        return f"{self.call_id or 'test'}:{self.function_call_id}"
