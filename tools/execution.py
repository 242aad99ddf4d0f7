"""Running one tool: check the model's arguments, then hand them to the tool's kind.

Plain async code with no database: the runner (live calls), the Celery task (background
tools) and the dashboard's test button prepare a ToolRequest and the tool's secrets, and
all of them come here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from tools import builtins
from tools.mock import render_template
from tools.outcomes import ToolOutcome, ToolRequest

MAX_REPORTED_PROBLEMS = 5


@dataclass(frozen=True)
class ToolSecrets:
    """What the snapshot leaves out, read from the tool's row when it runs."""

    signing_secret: str = ""
    headers: dict[str, str] | None = None
    mcp_auth_header: str = ""


def parse_arguments(
    raw: str, name: str, parameters: dict[str, Any] | None
) -> dict[str, Any] | ToolOutcome:
    """The arguments as a dict, or an outcome telling the model what is wrong with them."""
    try:
        # An empty string is what some models send for a function without arguments.
        parsed = json.loads(raw) if (raw or "").strip() else {}
    except (json.JSONDecodeError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict):
        return ToolOutcome.failure(
            "invalid_arguments",
            f"The arguments of {name} must be a JSON object; call it again with valid arguments.",
        )
    if not parameters:
        return parsed
    try:
        validator = Draft202012Validator(parameters)
        problems = sorted(validator.iter_errors(parsed), key=lambda error: list(error.path))
    except SchemaError:
        return parsed  # schemas are checked when saved; an old one must not block calls
    if not problems:
        return parsed
    details = [_describe(problem.path, problem.message) for problem in problems]
    return ToolOutcome.failure(
        "invalid_arguments",
        f"The arguments of {name} are not valid: {'; '.join(details[:MAX_REPORTED_PROBLEMS])}. "
        "Ask the caller for what is missing or wrong, then call it again.",
        details=details,
    )


def _describe(path: Any, message: str) -> str:
    where = ".".join(str(part) for part in path)
    return f"{where}: {message}" if where else message


async def execute(request: ToolRequest, secrets: ToolSecrets, remote_name: str = "") -> ToolOutcome:
    """Run the tool of ``request`` according to its kind; every failure is an outcome."""
    tool = request.tool
    kind = tool.kind
    timeout = tool.timeout_seconds
    if kind == "mock":
        message = render_template(tool.mock_response, request.arguments)
        return ToolOutcome.success({"ok": True, "message": message})
    if kind == "builtin":
        return await builtins.run(request)
    if kind == "webhook":
        from tools.webhooks import call_webhook

        return await call_webhook(
            request,
            url=tool.webhook_url,
            method=tool.http_method,
            signing_secret=secrets.signing_secret,
            headers=secrets.headers or {},
            timeout=timeout,
        )
    if kind == "mcp":
        from tools.mcp_servers import call_remote_tool

        return await call_remote_tool(
            request,
            url=tool.mcp_server_url,
            auth_header=secrets.mcp_auth_header,
            remote_name=remote_name,
            timeout=timeout,
        )
    return ToolOutcome.failure(
        "tool_unavailable",
        f"The tool {tool.name} cannot be run. Apologise and offer another way to help.",
    )
