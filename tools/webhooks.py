"""Webhook tools: a signed JSON request to the tenant's server, its answer for the model.

What is sent and how a receiver verifies it is documented in docs/integrate/webhooks.md;
tests run that documented code against what this sends.
Requests go through foundation.outbound, so a webhook can never reach Koe's own network.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import time
from typing import Any

import httpx
from django.conf import settings

from foundation import signing
from foundation.outbound import OutboundBlocked, ResponseTooLarge, check_url, safe_client
from tools.outcomes import HttpExchange, ToolOutcome, ToolRequest

logger = logging.getLogger("koe.tools")

USER_AGENT = "Koe-Webhooks/1"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Koe's own headers: a tool's configured headers cannot replace them.
RESERVED_HEADERS = frozenset(
    {
        signing.HEADER.lower(),
        IDEMPOTENCY_HEADER.lower(),
        "content-type",
        "content-length",
        "transfer-encoding",
        "host",
    }
)
# A configured header whose name looks like this holds a credential: the dashboard's view of
# the exchange shows it redacted.
SECRET_HEADER_NAME = re.compile(
    r"auth|token|key|secret|pass|cookie|session|credential|signature|api", re.IGNORECASE
)
REDACTED = "[redacted]"
EXCERPT_CHARACTERS = 2000  # of a response body, in the exchange the dashboard shows
ERROR_EXCERPT_CHARACTERS = 300  # of an error response, in the message the model hears


async def call_webhook(
    request: ToolRequest,
    *,
    url: str,
    method: str,
    signing_secret: str,
    headers: dict[str, str],
    timeout: float,
) -> ToolOutcome:
    """POST (or ``method``) the signed call to ``url``; every failure is an outcome."""
    name = request.tool.name or "tool"
    method = (method or "POST").upper()
    body = request_body(request)
    sent_headers = request_headers(request, body, signing_secret, headers)
    secret_names = {key.lower() for key in headers if SECRET_HEADER_NAME.search(key)}
    planned = HttpExchange(
        method=method,
        url=url,
        request_headers=_redacted(sent_headers, secret_names),
        request_body=body.decode(),
    )
    started = time.monotonic()

    def failed(code: str, message: str) -> ToolOutcome:
        exchange = dataclasses.replace(planned, duration_ms=_elapsed_ms(started))
        return ToolOutcome.failure(code, message, exchanges=(exchange,))

    if not url:
        return failed("invalid_url", f"The {name} tool has no URL to call.")
    try:
        check_url(url)
        async with asyncio.timeout(timeout):
            return await _send(
                name, method, url, body, sent_headers, secret_names, timeout, started
            )
    except OutboundBlocked as error:
        logger.warning("Webhook %s refused: %s", name, error)
        return failed(
            "blocked_address",
            f"The {name} service cannot be called: {error}",
        )
    except (TimeoutError, httpx.TimeoutException):
        return failed(
            "timeout", f"The {name} service did not answer within {_seconds(timeout)} seconds."
        )
    except ResponseTooLarge:
        return failed("response_too_large", _too_large_message(name))
    except httpx.TooManyRedirects:
        return failed("too_many_redirects", f"The {name} service redirected too many times.")
    except (httpx.ConnectError, httpx.NetworkError) as error:
        logger.info("Webhook %s unreachable: %s", name, error)
        reason = str(error).rstrip(".") or "no connection"
        return failed("unreachable", f"The {name} service could not be reached ({reason}).")
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
        return failed("invalid_url", f"The {name} service's URL is not valid ({error}).")
    except httpx.HTTPError as error:
        logger.info("Webhook %s failed: %s", name, error)
        return failed("bad_response", f"The {name} service's answer could not be read.")
    except Exception:
        logger.exception("Webhook %s failed unexpectedly", name)
        return failed("tool_failed", f"The {name} service could not be used just now.")


def request_body(request: ToolRequest) -> bytes:
    """The JSON body Koe sends: compact, UTF-8."""
    payload = {
        "tool": request.tool.name,
        "call_id": request.call_id,
        "function_call_id": request.function_call_id,
        "arguments": request.arguments,
        "context": {
            "tenant": request.tenant_id,
            "agent": request.agent_id,
            "call": request.call_id,
            "end_user": request.end_user,
        },
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def request_headers(
    request: ToolRequest, body: bytes, signing_secret: str, tool_headers: dict[str, str]
) -> dict[str, str]:
    """The tool's own headers, then Koe's (which they cannot replace)."""
    sent = {"User-Agent": USER_AGENT}
    for key, value in tool_headers.items():
        if key.lower() == "user-agent":
            sent.pop("User-Agent", None)
        if key.lower() not in RESERVED_HEADERS:
            sent[key] = value
    sent["Content-Type"] = "application/json"
    sent[signing.HEADER] = signing.sign(signing_secret, body)
    sent[IDEMPOTENCY_HEADER] = request.idempotency_key
    return sent


async def _send(
    name: str,
    method: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    secret_names: set[str],
    timeout: float,
    started: float,
) -> ToolOutcome:
    limit = int(settings.KOE_TOOL_MAX_RESPONSE_BYTES)
    # The transport's cap (bytes on the wire) also bounds redirect bodies, which httpx
    # reads whole; the loop below caps the decoded body the model would get.
    async with (
        safe_client(timeout=timeout, max_response_bytes=limit) as client,
        client.stream(method, url, content=body, headers=headers) as response,
    ):
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ResponseTooLarge(f"The response declares {declared} bytes.")
        received = bytearray()
        async for chunk in response.aiter_bytes():
            received += chunk
            if len(received) > limit:
                raise ResponseTooLarge(f"The response is larger than {limit} bytes.")
    text = bytes(received).decode(response.charset_encoding or "utf-8", errors="replace")
    exchanges = _exchanges(response, text, body, secret_names, _elapsed_ms(started))
    if not response.is_success:
        excerpt = " ".join(text.split())[:ERROR_EXCERPT_CHARACTERS]
        message = f"The {name} service answered {response.status_code} {response.reason_phrase}"
        return ToolOutcome.failure(
            "http_error",
            f"{message}: {excerpt}" if excerpt else f"{message}.",
            exchanges=exchanges,
        )
    if _is_json(response):
        try:
            result: Any = json.loads(text) if text.strip() else {"result": ""}
        except (ValueError, RecursionError):
            return ToolOutcome.failure(
                "bad_response",
                f"The {name} service said it answered JSON, but its answer is not valid JSON.",
                exchanges=exchanges,
            )
        output = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
        return ToolOutcome.success(output, exchanges=exchanges)
    return ToolOutcome.success({"result": text}, exchanges=exchanges)


def _is_json(response: httpx.Response) -> bool:
    media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _exchanges(
    response: httpx.Response, text: str, body: bytes, secret_names: set[str], total_ms: int
) -> tuple[HttpExchange, ...]:
    """One exchange per hop (redirects first); their durations add up to the total."""
    exchanges: list[HttpExchange] = []
    for hop in response.history:
        hop_ms = round(hop.elapsed.total_seconds() * 1000)
        excerpt = hop.text[:EXCERPT_CHARACTERS]
        exchanges.append(_exchange(hop, excerpt, body, secret_names, hop_ms))
    final_ms = max(total_ms - sum(exchange.duration_ms for exchange in exchanges), 0)
    excerpt = text[:EXCERPT_CHARACTERS]
    exchanges.append(_exchange(response, excerpt, body, secret_names, final_ms))
    return tuple(exchanges)


def _exchange(
    response: httpx.Response,
    excerpt: str,
    body: bytes,
    secret_names: set[str],
    duration_ms: int,
) -> HttpExchange:
    sent = response.request
    try:
        sent_body = sent.content
    except httpx.RequestNotRead:
        sent_body = body  # a 307/308 redirect sends the same body again
    return HttpExchange(
        method=sent.method,
        url=str(sent.url),
        request_headers=_redacted(_as_sent(sent.headers), secret_names),
        request_body=sent_body.decode(errors="replace"),
        status=response.status_code,
        response_headers=_as_sent(response.headers),
        response_body=excerpt,
        duration_ms=duration_ms,
    )


def _as_sent(headers: httpx.Headers) -> dict[str, str]:
    """The headers with their names spelled as on the wire (repeated ones joined)."""
    joined: dict[str, str] = {}
    for raw_name, raw_value in headers.raw:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    return joined


def _redacted(headers: dict[str, str], secret_names: set[str]) -> dict[str, str]:
    return {
        key: REDACTED if key.lower() in secret_names else value for key, value in headers.items()
    }


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _seconds(timeout: float) -> str:
    return str(int(timeout)) if float(timeout).is_integer() else f"{timeout:g}"


def _too_large_message(name: str) -> str:
    limit = int(settings.KOE_TOOL_MAX_RESPONSE_BYTES)
    return f"The {name} service's answer is too long (over {limit // 1024} KB) to use."
