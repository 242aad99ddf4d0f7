"""Talking to tenants' MCP servers (streamable HTTP) with the official ``mcp`` SDK.

Every request goes through ``foundation.outbound.safe_client``, so an MCP server is held to the
same outbound rules as a webhook. Listing a server's tools raises McpServerError with a
message a tenant can act on; calling a tool answers with a ToolOutcome and never raises.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, TypeVar

import anyio
import httpx
from django.conf import settings
from django.core.cache import cache
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError as ProtocolError
from mcp.shared.session import RequestResponder

from foundation.outbound import OutboundBlocked, ResponseTooLarge, safe_client
from tools.models import ToolDefinition, select_mcp_tools
from tools.outcomes import ToolOutcome, ToolRequest

logger = logging.getLogger(__name__)

# A save waits for the server's list at most this long, whatever the tool's call timeout.
SAVE_LISTING_TIMEOUT_SECONDS = 10
MAX_LISTING_PAGES = 20
MAX_OUTPUT_CHARACTERS = 20_000
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}

T = TypeVar("T")


class McpServerError(Exception):
    """An MCP server could not be used; ``code`` says why, the message says it to a person.

    Codes: blocked_address, unreachable, timeout, auth_refused, not_mcp_server,
    response_too_large, server_error.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RemoteTool:
    name: str
    description: str
    input_schema: dict[str, Any]

    def as_snapshot(self) -> dict[str, Any]:
        """The entry of a version snapshot's ``mcp_tools`` (see tools.functions)."""
        return asdict(self)

    @classmethod
    def from_snapshot(cls, entry: dict[str, Any]) -> RemoteTool:
        return cls(
            name=str(entry["name"]),
            description=str(entry.get("description") or ""),
            input_schema=entry.get("input_schema") or dict(_EMPTY_SCHEMA),
        )


@dataclass(frozen=True)
class McpListing:
    """What asking a server for its tools gave: the tools, or the error instead."""

    tools: list[RemoteTool] | None
    error: McpServerError | None = None

    @property
    def names(self) -> list[str]:
        return [tool.name for tool in self.tools or []]


# --- async core -----------------------------------------------------------------------------


async def list_remote_tools(url: str, auth_header: str, *, timeout: float) -> list[RemoteTool]:
    """The tools the server at ``url`` offers; raises McpServerError."""

    async def list_all(session: ClientSession) -> list[RemoteTool]:
        tools: list[RemoteTool] = []
        cursor: str | None = None
        for _ in range(MAX_LISTING_PAGES):
            page = await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
            tools.extend(
                RemoteTool(
                    name=tool.name,
                    description=tool.description or "",
                    input_schema=tool.inputSchema or dict(_EMPTY_SCHEMA),
                )
                for tool in page.tools
            )
            cursor = page.nextCursor
            if not cursor:
                break
        return tools

    return await _with_session(url, auth_header, timeout, list_all)


async def cached_remote_tools(
    tool_id: str, url: str, auth_header: str, *, timeout: float
) -> list[RemoteTool]:
    """list_remote_tools, reused for settings.KOE_MCP_TOOLS_CACHE_SECONDS."""
    key = listing_cache_key(tool_id, url)
    cached = await cache.aget(key)
    if cached is not None:
        return [RemoteTool.from_snapshot(entry) for entry in cached]
    tools = await list_remote_tools(url, auth_header, timeout=timeout)
    await cache.aset(
        key, [tool.as_snapshot() for tool in tools], settings.KOE_MCP_TOOLS_CACHE_SECONDS
    )
    return tools


def listing_cache_key(tool_id: str, url: str) -> str:
    return f"mcp-tools:{tool_id}:{hashlib.sha256(url.encode()).hexdigest()[:32]}"


async def call_remote_tool(
    request: ToolRequest, *, url: str, auth_header: str, remote_name: str, timeout: float
) -> ToolOutcome:
    """Call ``remote_name`` on the server with the request's arguments; never raises."""

    async def call(session: ClientSession) -> types.CallToolResult:
        return await session.call_tool(remote_name, request.arguments)

    try:
        result = await _with_session(url, auth_header, timeout, call)
    except McpServerError as error:
        logger.info(
            "MCP tool %s (%s) of %s failed: %s",
            remote_name,
            request.tool.id,
            request.tenant_id,
            error.code,
        )
        return ToolOutcome.failure(error.code, error.message)
    text = _text_of(result.content)
    if result.isError:
        return ToolOutcome.failure("tool_error", text or f"The tool {remote_name} failed.")
    if result.structuredContent is not None:
        structured = json.dumps(result.structuredContent, ensure_ascii=False)
        if len(structured) <= MAX_OUTPUT_CHARACTERS:
            return ToolOutcome.success(structured)
    return ToolOutcome.success({"result": text})


# --- sync helpers, for saving tools ---------------------------------------------------------


def list_tools_of(
    tool: ToolDefinition,
    *,
    url: str | None = None,
    auth_header: str | None = None,
    timeout: float | None = None,
) -> McpListing:
    """Ask the tool's server (or the given URL and header) for its tools; never raises.

    Meant for saves: it blocks, bypasses the cache and refills it with what it got.
    """
    url = tool.mcp_server_url if url is None else url
    auth_header = tool.mcp_auth_header if auth_header is None else auth_header
    if timeout is None:
        timeout = float(min(tool.timeout_seconds or 10, SAVE_LISTING_TIMEOUT_SECONDS))
    try:
        tools = _run_blocking(list_remote_tools(url, auth_header, timeout=timeout))
    except McpServerError as error:
        logger.info("Listing the MCP tools of %s failed: %s", tool.public_id, error.code)
        return McpListing(tools=None, error=error)
    cache.set(
        listing_cache_key(tool.public_id, url),
        [remote.as_snapshot() for remote in tools],
        settings.KOE_MCP_TOOLS_CACHE_SECONDS,
    )
    return McpListing(tools=tools)


def refresh_mcp_tools(tool: ToolDefinition) -> list[dict[str, Any]]:
    """The ``mcp_tools`` entries of the tool's snapshot, freshly listed; raises McpServerError."""
    listing = list_tools_of(tool)
    if listing.error is not None:
        raise listing.error
    return select_mcp_tools(
        [remote.as_snapshot() for remote in listing.tools or []], tool.mcp_tool_names
    )


def _run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    # Called from async code: a loop cannot be nested, so run it in a thread of its own.
    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(asyncio.run, coroutine).result()


# --- one MCP session ------------------------------------------------------------------------


async def _with_session(
    url: str,
    auth_header: str,
    timeout: float,
    action: Callable[[ClientSession], Awaitable[T]],
) -> T:
    """Open a session (initialize), run ``action`` in it, and translate every failure."""
    headers = {"Authorization": auth_header} if auth_header else {}
    # Transport problems (a body that is not JSON-RPC, a wrong content type) reach the
    # session as messages, not exceptions: stop at the first instead of waiting it out.
    problems: list[Exception] = []
    try:
        with anyio.fail_after(timeout), anyio.CancelScope() as scope:

            async def on_message(
                message: RequestResponder[types.ServerRequest, types.ClientResult]
                | types.ServerNotification
                | Exception,
            ) -> None:
                if isinstance(message, Exception):
                    problems.append(message)
                    scope.cancel()

            async with (
                safe_client(
                    timeout=timeout, max_response_bytes=MAX_RESPONSE_BYTES, headers=headers
                ) as http_client,
                streamable_http_client(url, http_client=http_client) as (read, write, _),
                ClientSession(
                    read,
                    write,
                    read_timeout_seconds=timedelta(seconds=timeout),
                    message_handler=on_message,
                ) as session,
            ):
                await session.initialize()
                return await action(session)
    except Exception as error:
        raise _translate(error, url, timeout) from error
    problem: Exception = problems[0] if problems else ValueError("no answer")
    raise _translate(problem, url, timeout) from problem


def _translate(error: Exception, url: str, timeout: float) -> McpServerError:
    causes = list(_causes(error))
    for cause in causes:
        if isinstance(cause, OutboundBlocked):
            return McpServerError(
                "blocked_address", f"The MCP server's address is refused: {cause}"
            )
    for cause in causes:
        if isinstance(cause, httpx.HTTPStatusError):
            status = cause.response.status_code
            if status in (401, 403):
                return McpServerError(
                    "auth_refused",
                    f"The MCP server refused the request (HTTP {status}); "
                    "check the Authorization header.",
                )
            if status >= 500:
                return McpServerError("server_error", f"The MCP server failed (HTTP {status}).")
            return McpServerError(
                "not_mcp_server",
                f"{url} did not answer as an MCP server (streamable HTTP): HTTP {status}.",
            )
    for cause in causes:
        if isinstance(cause, TimeoutError | httpx.TimeoutException) or (
            isinstance(cause, ProtocolError) and cause.error.code == httpx.codes.REQUEST_TIMEOUT
        ):
            return McpServerError(
                "timeout", f"The MCP server did not answer within {timeout:g} seconds."
            )
    for cause in causes:
        if isinstance(cause, httpx.TransportError):
            return McpServerError("unreachable", f"The MCP server cannot be reached: {cause}")
    for cause in causes:
        if isinstance(cause, ResponseTooLarge):
            return McpServerError(
                "response_too_large", f"The MCP server's answer is too large: {cause}"
            )
    for cause in causes:
        if isinstance(cause, ProtocolError):
            if cause.error.message == "Session terminated":  # the SDK's word for HTTP 404
                return McpServerError(
                    "not_mcp_server",
                    f"{url} did not answer as an MCP server (streamable HTTP): HTTP 404.",
                )
            return McpServerError(
                "server_error", f"The MCP server answered with an error: {cause.error.message}"
            )
    if isinstance(error, ValueError):  # what the SDK reports for an answer it cannot read
        return McpServerError(
            "not_mcp_server", f"{url} did not answer as an MCP server (streamable HTTP): {error}"
        )
    logger.warning("Unexpected failure talking to the MCP server %s", url, exc_info=error)
    return McpServerError("server_error", f"Talking to the MCP server failed: {error}")


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error, what it groups (anyio task groups) and what caused it, depth first."""
    pending = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(reversed(current.exceptions))
        if current.__cause__ is not None:
            pending.append(current.__cause__)


def _text_of(content: list[types.ContentBlock]) -> str:
    parts: list[str] = []
    for block in content:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        elif isinstance(block, types.EmbeddedResource) and isinstance(
            block.resource, types.TextResourceContents
        ):
            parts.append(block.resource.text)
    text = "\n".join(parts)
    if len(text) > MAX_OUTPUT_CHARACTERS:
        return text[:MAX_OUTPUT_CHARACTERS] + "…"
    return text
