"""Delivering one event: sign it, POST it through the outbound guard, record the outcome.

Plain code the Celery task drives; it decides whether an attempt may be retried, the
task only schedules the retry.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from enum import StrEnum

import httpx
from django.db.models import F
from django.utils import timezone

from events.models import EventEndpoint, EventStatus, OutboundEvent
from foundation import signing
from foundation.outbound import OutboundBlocked, safe_client

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0
MAX_ATTEMPTS = 8
# Worth another try later: the receiver is busy, slow or broken for now.
RETRYABLE_STATUS_CODES = frozenset({408, 429})
FIRST_RETRY_SECONDS = 30
# Retries further off than the broker's visibility timeout are scheduled on the event
# (events.tasks), so they may be as long as a receiver's outage needs.
LONGEST_RETRY_SECONDS = 2 * 3600
MAX_ERROR_LENGTH = 500
RESPONSE_EXCERPT_BYTES = 200
USER_AGENT = "Koe-Events/1"


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    attempts: int
    status_code: int | None = None
    error: str = ""


@dataclass(frozen=True)
class _Response:
    status_code: int
    excerpt: str
    location: str


def retry_delay(attempts: int) -> int:
    """Seconds before the next attempt after ``attempts`` failed ones: 30 s, 90 s, 4.5 min…"""
    return min(FIRST_RETRY_SECONDS * 3 ** max(0, attempts - 1), LONGEST_RETRY_SECONDS)


def event_body(event: OutboundEvent) -> bytes:
    envelope = {
        "id": event.public_id,
        "type": event.type,
        "created": int(event.created_at.timestamp()),
        "data": event.payload,
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def attempt_delivery(event_id: int, *, may_retry: bool = True) -> Attempt:
    """Send a pending event once. Delivered or failed events are skipped (idempotent).

    ``may_retry=False`` turns what would be retried into a failure: for a run with no
    worker to try again later.
    """
    event = OutboundEvent.objects.filter(pk=event_id).first()
    if event is None or event.status != EventStatus.PENDING:
        return Attempt(Outcome.SKIPPED, attempts=event.attempts if event else 0)
    endpoint = EventEndpoint.objects.filter(tenant_id=event.tenant_id, is_active=True).first()
    if endpoint is None:
        return _record(
            event,
            Attempt(
                Outcome.FAILED,
                attempts=event.attempts,
                error="Events were turned off (no events URL) before this one was delivered.",
            ),
        )
    # Counted before sending: a worker lost mid-request has still made the attempt.
    OutboundEvent.objects.filter(pk=event.pk).update(attempts=F("attempts") + 1)
    event.refresh_from_db(fields=["attempts"])
    body = event_body(event)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Koe-Event-Id": event.public_id,
        "Koe-Event-Type": event.type,
        signing.HEADER: signing.sign(endpoint.signing_secret, body),
    }
    attempt = _classify(event.attempts, endpoint.url, body, headers)
    return _record(event, _settle(attempt, may_retry=may_retry))


def record_interruption(event_id: int, error: str, *, may_retry: bool = True) -> Attempt:
    """Record an attempt cut short (e.g. a time limit): retried like a timeout."""
    event = OutboundEvent.objects.filter(pk=event_id).first()
    if event is None or event.status != EventStatus.PENDING:
        return Attempt(Outcome.SKIPPED, attempts=event.attempts if event else 0)
    attempt = Attempt(Outcome.RETRY, attempts=max(event.attempts, 1), error=error)
    return _record(event, _settle(attempt, may_retry=may_retry))


def _settle(attempt: Attempt, *, may_retry: bool) -> Attempt:
    """A retry becomes a failure after the last attempt, or when no retry can happen."""
    if attempt.outcome != Outcome.RETRY or (attempt.attempts < MAX_ATTEMPTS and may_retry):
        return attempt
    why = "gave up after" if may_retry else "not retried (no Celery worker) after"
    return Attempt(
        Outcome.FAILED,
        attempts=attempt.attempts,
        status_code=attempt.status_code,
        error=f"{attempt.error} ({why} {attempt.attempts} attempt(s))",
    )


def _classify(attempts: int, url: str, body: bytes, headers: dict[str, str]) -> Attempt:
    try:
        response = asyncio.run(_post(url, body, headers))
    except OutboundBlocked as error:
        return Attempt(Outcome.FAILED, attempts, error=f"Blocked: {error}")
    except (TimeoutError, httpx.TimeoutException):
        return Attempt(Outcome.RETRY, attempts, error=f"No response within {TIMEOUT_SECONDS:g} s.")
    except httpx.HTTPError as error:
        kind = type(error).__name__
        return Attempt(Outcome.RETRY, attempts, error=f"Could not reach the URL ({kind}): {error}")
    code = response.status_code
    if 200 <= code < 300:
        return Attempt(Outcome.DELIVERED, attempts, status_code=code)
    detail = f"HTTP {code}" + (f": {response.excerpt}" if response.excerpt else "")
    if 300 <= code < 400:
        target = f" to {response.location}" if response.location else ""
        message = (
            f"HTTP {code}: the URL redirects{target}; set the final URL "
            "(redirects are not followed)."
        )
        return Attempt(Outcome.FAILED, attempts, status_code=code, error=message)
    if code >= 500 or code in RETRYABLE_STATUS_CODES:
        return Attempt(Outcome.RETRY, attempts, status_code=code, error=detail)
    return Attempt(Outcome.FAILED, attempts, status_code=code, error=detail)


async def _post(url: str, body: bytes, headers: dict[str, str]) -> _Response:
    # One deadline for the whole exchange: httpx's timeout is per connect, read, write.
    async with asyncio.timeout(TIMEOUT_SECONDS):
        # A redirect could turn the POST into a GET and lose the event: not followed.
        async with safe_client(timeout=TIMEOUT_SECONDS, max_redirects=0) as client:
            request = client.build_request("POST", url, content=body, headers=headers)
            response = await client.send(request, stream=True)
            try:
                excerpt = await _start_of_body(response)
                return _Response(
                    response.status_code,
                    "" if response.is_success else excerpt,
                    response.headers.get("location", ""),
                )
            finally:
                await response.aclose()


async def _start_of_body(response: httpx.Response) -> str:
    """The start of the body, for an error message; a short body is read whole, so the
    connection closes cleanly."""
    received = b""
    async for chunk in response.aiter_bytes():
        received += chunk
        if len(received) >= RESPONSE_EXCERPT_BYTES:
            break
    return " ".join(received[:RESPONSE_EXCERPT_BYTES].decode(errors="replace").split())


def _record(event: OutboundEvent, attempt: Attempt) -> Attempt:
    fields: dict[str, object] = {
        "last_status_code": attempt.status_code,
        "last_error": attempt.error[:MAX_ERROR_LENGTH],
    }
    if attempt.outcome == Outcome.DELIVERED:
        fields.update(status=EventStatus.DELIVERED, delivered_at=timezone.now())
    elif attempt.outcome == Outcome.FAILED:
        fields["status"] = EventStatus.FAILED
    # Only a pending row: a concurrent run that delivered it must not be overwritten.
    OutboundEvent.objects.filter(pk=event.pk, status=EventStatus.PENDING).update(**fields)
    log = logger.info if attempt.outcome == Outcome.DELIVERED else logger.warning
    log(
        "Event %s attempt %d: %s %s",
        event.public_id,
        attempt.attempts,
        attempt.outcome,
        attempt.error or attempt.status_code,
    )
    return attempt
