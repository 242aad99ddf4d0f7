"""Writing access log rows from views: who, when, which call, what, from where."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from audit.models import AccessLog
from calls.models import CallSession
from foundation.http import client_ip
from tenancy.models import Membership


def record_access(
    request: HttpRequest,
    membership: Membership,
    action: str,
    call: CallSession | None = None,
    **detail: Any,
) -> AccessLog:
    user = membership.user
    address = client_ip(request)
    return AccessLog.objects.create(
        tenant=membership.tenant,
        user=user,
        actor=user.email or user.get_username(),
        role=membership.role,
        call=call,
        call_public_id=call.public_id if call else "",
        action=action,
        ip_address=address if address != "unknown" else None,
        user_agent=request.headers.get("User-Agent", "")[:300],
        detail=detail,
    )
