"""REST API v1 for phone calls: place one (``POST /v1/calls``) and follow it.

A placed call answers at once with its id and ``queued``; its status then follows on
``GET /v1/calls/{id}`` and in ``phone_call.status`` events, and once the callee answers
it is a call like any other (``call``: its id in the calls list, transcript and cost).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from agents.telephony.models import PhoneCall
from agents.telephony.outbound import OutboundCall, OutboundRefused, place_call
from agents.telephony.progress import phone_call_json
from foundation.api import Pagination, error_response, error_responses, page, request_tenant
from tenancy.scoping import for_tenant, get_for_tenant_or_404

router = Router(tags=["phone calls"])


class CallCreate(Schema):
    agent: str = Field(description="The agent that talks.")
    to: str = Field(description="The number to ring, E.164.")
    from_: str = Field(alias="from", description="One of the tenant's numbers, E.164.")
    end_user: str = Field("", description="Your reference for the callee; default: `to`.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Kept with the call.")


class PhoneCallOut(Schema):
    id: str
    direction: str
    status: str = Field(
        description="queued, ringing, in-progress, completed, busy, no-answer, failed, canceled"
    )
    agent: str | None
    number: str | None = Field(description="The tenant's number the call is on.")
    remote_number: str = Field(description="The caller (inbound) or the callee (outbound).")
    call: str | None = Field(description="The call's id once it connected to the agent.")
    end_reason: str | None
    answered_by: str | None = Field(description="Answering-machine detection's verdict.")
    transfer_to: str | None
    duration_seconds: int | None = Field(description="The carrier's billed duration.")
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class PhoneCallList(Schema):
    items: list[PhoneCallOut]
    count: int
    limit: int
    offset: int


def _phone_calls(request: HttpRequest) -> Any:
    return for_tenant(PhoneCall, request_tenant(request)).select_related(
        "agent", "phone_number", "call"
    )


@router.post(
    "/calls",
    response={201: PhoneCallOut, **error_responses(400, 429, 502)},
    summary="Place a phone call: the agent rings a number",
)
def create_call(request: HttpRequest, body: CallCreate) -> Any:
    outbound = OutboundCall(
        agent_id=body.agent,
        to=body.to.strip(),
        from_number=body.from_.strip(),
        end_user=body.end_user.strip(),
        metadata=body.metadata,
    )
    try:
        phone_call = place_call(request_tenant(request), outbound)
    except OutboundRefused as refused:
        return error_response(request, refused.status, refused.message, code=refused.code)
    phone_call = _phone_calls(request).get(pk=phone_call.pk)
    return Status(201, phone_call_json(phone_call))


@router.get(
    "/calls", response={200: PhoneCallList, **error_responses(400)}, summary="List phone calls"
)
def list_calls(request: HttpRequest, pagination: Query[Pagination]) -> dict[str, Any]:
    phone_calls, count = page(_phone_calls(request).order_by("-created_at", "-pk"), pagination)
    return {
        "items": [phone_call_json(phone_call) for phone_call in phone_calls],
        "count": count,
        "limit": pagination.limit,
        "offset": pagination.offset,
    }


@router.get(
    "/calls/{call_id}",
    response={200: PhoneCallOut, **error_responses(404)},
    summary="Get a phone call",
)
def get_call(request: HttpRequest, call_id: str) -> dict[str, Any]:
    tenant = request_tenant(request)
    phone_call = get_for_tenant_or_404(_phone_calls(request), tenant, public_id=call_id)
    return phone_call_json(phone_call)
