"""What a client's WebSocket handshake to ``/v1/realtime`` carries, the way OpenAI's clients
send it: the key as ``Authorization: Bearer``, or a session token in the subprotocol
``openai-insecure-api-key.<token>`` (browsers cannot set headers) or the query string;
the agent as ``?model=``; consent and the end user as query parameters."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from agents.realtime.access import Caller

TOKEN_SUBPROTOCOL = "openai-insecure-api-key."


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


def chosen_subprotocol(scope: dict[str, Any]) -> str | None:
    """The subprotocol to accept: browsers fail the handshake unless the server picks one
    of those they offered."""
    offered: list[str] = scope.get("subprotocols") or []
    if not offered:
        return None
    return "realtime" if "realtime" in offered else offered[0]
