"""Built-in tools: end the call, hand it to a human, tell the time where the tenant is."""

from __future__ import annotations

import datetime
import zoneinfo

from asgiref.sync import sync_to_async

from tools.outcomes import ToolOutcome, ToolRequest


async def run(request: ToolRequest) -> ToolOutcome:
    name = request.tool.builtin_name
    if name == "current_time":
        return current_time(request.time_zone)
    if name == "end_call":
        return ToolOutcome.success(
            {"ok": True, "message": "Say a short goodbye now; the call ends when you finish."},
            end_call=True,
        )
    if name == "transfer_to_human":
        reason = str(request.arguments.get("reason") or "The caller asked for a person.")
        if request.call_id:
            await sync_to_async(_request_transfer)(request.call_id, reason)
        return ToolOutcome.success(
            {
                "ok": True,
                "message": "A member of staff has been asked to follow up with the caller. "
                "Tell the caller so, kindly.",
            },
            transfer_reason=reason,
        )
    return ToolOutcome.failure("tool_unavailable", f"Unknown built-in tool {name!r}.")


def current_time(time_zone: str) -> ToolOutcome:
    try:
        zone = zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    now = datetime.datetime.now(zone)
    spoken = now.strftime("%-I:%M %p on %A, %B %-d")
    return ToolOutcome.success(
        {
            "ok": True,
            "time": now.isoformat(timespec="seconds"),
            "time_zone": str(zone),
            "message": f"It is {spoken}.",
        }
    )


def _request_transfer(call_public_id: str, reason: str) -> None:
    from calls.models import CallSession
    from events import emit_transfer_requested

    call = CallSession.objects.filter(public_id=call_public_id).first()
    if call is not None:
        emit_transfer_requested(call, reason)
