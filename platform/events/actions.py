"""Emitting events, the summary of a call they carry, and a tenant's events endpoint."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from calls.models import CallSession
from events.models import EventEndpoint, EventType, OutboundEvent, new_signing_secret
from events.tasks import deliver_event
from foundation.outbound import validate_url_for_saving
from tenancy.models import Tenant

logger = logging.getLogger(__name__)

MAX_FOLLOW_UP_REASON_LENGTH = 1000


def emit(tenant: Tenant, event_type: str, data: dict[str, Any]) -> OutboundEvent | None:
    """Record an event for the tenant and deliver it once the transaction commits.

    Returns None, recording nothing, when the tenant has no active events endpoint.
    """
    if not EventEndpoint.objects.filter(tenant=tenant, is_active=True).exists():
        return None
    # Through JSON now, so the row holds exactly what every attempt will send.
    payload = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    event = OutboundEvent.objects.create(tenant=tenant, type=event_type, payload=payload)
    # Robust: a broker that is down must not fail the caller (e.g. ending a call); the
    # event stays pending with its row, and Django logs the error.
    transaction.on_commit(lambda: deliver_event.delay(event.pk), robust=True)
    logger.info("Event %s (%s) for tenant %s queued", event.public_id, event_type, tenant.pk)
    return event


def call_summary(call: CallSession) -> dict[str, Any]:
    """What events say about a call: its metadata and usage, never what was said."""
    agent_id = call.agent.public_id if call.agent is not None else None
    return {
        "call_id": call.public_id,
        "agent": {"id": agent_id, "name": call.agent_name, "version": call.version_number},
        "channel": call.channel,
        "end_user_ref": call.end_user_ref,
        "status": call.status,
        "started_at": call.started_at.isoformat(),
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "duration_ms": call.duration_ms,
        "end_reason": call.end_reason,
        # More than 1: the speech provider's session was replaced mid-call (it dropped, or
        # reached its time limit) and the conversation carried over.
        "provider_sessions": call.provider_sessions,
        "turn_count": call.turn_count,
        "tokens": {
            "input": call.input_tokens,
            "output": call.output_tokens,
            "total": call.total_tokens,
        },
        "consent_scope": call.consent_scope,
        "needs_follow_up": call.needs_follow_up,
    }


def emit_call_ended(call: CallSession) -> OutboundEvent | None:
    return emit(call.tenant, EventType.CALL_ENDED, call_summary(call))


def emit_transfer_requested(call: CallSession, reason: str) -> None:
    """Mark the call for human follow-up and emit ``call.transfer_requested``.

    The reason is the model's words about the conversation: like a tool's arguments, it
    is stored and sent only when the caller's consent covers the transcript.
    """
    with transaction.atomic():
        fresh = CallSession.objects.select_for_update().select_related("tenant").get(pk=call.pk)
        tidy = " ".join(reason.split())[:MAX_FOLLOW_UP_REASON_LENGTH]
        kept_reason = tidy if fresh.stores_transcript else ""
        fresh.needs_follow_up = True
        fresh.follow_up_reason = kept_reason
        fresh.save(update_fields=["needs_follow_up", "follow_up_reason"])
        call.needs_follow_up = True
        call.follow_up_reason = kept_reason
        data = {**call_summary(fresh), "reason": kept_reason}
        emit(fresh.tenant, EventType.CALL_TRANSFER_REQUESTED, data)


def send_test_event(tenant: Tenant) -> OutboundEvent | None:
    return emit(tenant, EventType.PING, {"message": "A test event sent from the Koe dashboard."})


def set_events_url(tenant: Tenant, url: str) -> tuple[EventEndpoint | None, str]:
    """Point the tenant's events at ``url``, or turn them off with an empty one.

    Returns the endpoint and, when this created it, its new signing secret (shown once);
    an existing endpoint keeps its secret. A URL Koe may not call is a ValidationError.
    """
    validate_url_for_saving(url)
    if not url:
        EventEndpoint.objects.filter(tenant=tenant).update(url="", is_active=False)
        return EventEndpoint.objects.filter(tenant=tenant).first(), ""
    secret = new_signing_secret()
    endpoint, created = EventEndpoint.objects.get_or_create(
        tenant=tenant, defaults={"url": url, "signing_secret": secret}
    )
    if created:
        return endpoint, secret
    endpoint.url = url
    endpoint.is_active = True
    endpoint.save(update_fields=["url", "is_active"])
    return endpoint, ""


def rotate_signing_secret(endpoint: EventEndpoint) -> str:
    """Replace the events signing secret; the new one is returned to be shown once."""
    secret = new_signing_secret()
    endpoint.signing_secret = secret
    endpoint.save(update_fields=["signing_secret"])
    return secret
