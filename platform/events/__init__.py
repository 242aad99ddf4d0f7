"""Outbound events to tenants: what happened in their calls, signed and retried.

``emit`` and ``emit_transfer_requested`` are the entry points for other apps. They
import the models when called: Django imports this package before its models are ready.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from calls.models import CallSession
    from events.models import OutboundEvent
    from tenancy.models import Tenant


def emit(tenant: Tenant, event_type: str, data: dict[str, Any]) -> OutboundEvent | None:
    """Record an event and deliver it after the transaction commits; None without an endpoint."""
    from events import actions

    return actions.emit(tenant, event_type, data)


def emit_transfer_requested(call: CallSession, reason: str) -> None:
    """Mark the call for human follow-up and tell the tenant (``call.transfer_requested``)."""
    from events import actions

    actions.emit_transfer_requested(call, reason)
