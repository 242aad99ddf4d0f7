"""How a call is getting on at the carrier: its status recorded, and the tenant told.

Statuses only move forward (a late "ringing" cannot undo "completed"); each change is a
``phone_call.status`` event to the tenant's events endpoint, signed and retried there.
A final status also settles the batch entry the call was for (``batch_outcomes``).
"""

from __future__ import annotations

from typing import Any

from agents.telephony.batch_outcomes import on_phone_call_final
from agents.telephony.models import FINAL_STATUSES, PhoneCall, PhoneCallStatus
from events import emit
from events.models import EventType

ORDER: dict[str, int] = {
    PhoneCallStatus.QUEUED: 0,
    PhoneCallStatus.RINGING: 1,
    PhoneCallStatus.IN_PROGRESS: 2,
}


def phone_call_json(phone_call: PhoneCall) -> dict[str, Any]:
    """A phone call as the API and events show it."""
    call = phone_call.call
    return {
        "id": phone_call.public_id,
        "direction": phone_call.direction,
        "status": phone_call.status,
        "agent": phone_call.agent.public_id if phone_call.agent else None,
        "number": phone_call.phone_number.number if phone_call.phone_number else None,
        # The caller (inbound) or the callee (outbound): on the call once it connected.
        "remote_number": phone_call.remote_number or (call.end_user_ref if call else ""),
        "call": call.public_id if call is not None else None,
        "end_reason": call.end_reason if call is not None else None,
        "answered_by": phone_call.answered_by or None,
        "transfer_to": phone_call.transfer_to or None,
        "duration_seconds": phone_call.carrier_duration_seconds,
        "metadata": phone_call.metadata,
        "created_at": phone_call.created_at,
        "updated_at": phone_call.updated_at,
    }


def record_status(
    phone_call: PhoneCall, status: str, *, duration: str = "", answered_by: str = ""
) -> bool:
    """Record the carrier's status for the call; False when it changes nothing."""
    if status not in PhoneCallStatus.values or phone_call.status in FINAL_STATUSES:
        return False
    if status not in FINAL_STATUSES and ORDER.get(status, 0) <= ORDER.get(phone_call.status, 0):
        return False
    phone_call.status = status
    fields = ["status", "updated_at"]
    if duration.isdigit():
        phone_call.carrier_duration_seconds = int(duration)
        fields.append("carrier_duration_seconds")
    if answered_by and not phone_call.answered_by:
        phone_call.answered_by = answered_by[:32]
        fields.append("answered_by")
    phone_call.save(update_fields=fields)
    emit(phone_call.tenant, EventType.PHONE_CALL_STATUS, phone_call_json(phone_call))
    if status in FINAL_STATUSES:
        on_phone_call_final(phone_call)
    return True
