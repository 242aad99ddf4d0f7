"""Operator control of calls from outside the process that holds them."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from enum import StrEnum

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from calls import liveness
from calls.ledger import end_call
from calls.models import CallSession, CallStatus, EndReason

logger = logging.getLogger(__name__)

# Providers end sessions at 60 minutes, and agents cannot ask for longer.
MAX_LIVE_CALL_SECONDS = 3600


def stale_before(now: datetime | None = None) -> datetime:
    """Active calls started before this are stale: no live session can be that old."""
    limit = timedelta(seconds=MAX_LIVE_CALL_SECONDS + settings.KOE_STALE_CALL_GRACE_SECONDS)
    return (now or timezone.now()) - limit


class EndOutcome(StrEnum):
    ALREADY_ENDED = "already_ended"
    SIGNALLED = "signalled"  # the live call was asked to end; it records its own end
    ENDED_STALE = "ended_stale"  # no process held the call: its row was ended here
    UNREACHABLE = "unreachable"  # the channel layer refused the message


def is_stale(call: CallSession, now: datetime | None = None, lost: set[str] | None = None) -> bool:
    """An active call whose process is gone: it stopped beating (``lost``: the names of
    such processes, looked up once for a page of calls), or the call is older than any
    live session can be."""
    if call.status != CallStatus.ACTIVE:
        return False
    if lost is None:
        lost = lost_instance_names(now)
    return call.server_instance in lost or call.started_at < stale_before(now)


def lost_instance_names(now: datetime | None = None) -> set[str]:
    return set(liveness.lost_instances(now).values_list("name", flat=True))


def request_call_end(call: CallSession, requested_by: str, detail: str = "") -> EndOutcome:
    """Ask the process holding a live call to end it; end a stale call's row directly."""
    if call.status != CallStatus.ACTIVE:
        return EndOutcome.ALREADY_ENDED
    detail = detail or f"Ended from the dashboard by {requested_by}"
    stale = is_stale(call)
    message = {"type": "call.end", "reason": EndReason.OPERATOR.value, "detail": detail}
    try:
        async_to_sync(get_channel_layer().group_send)(call.group_name, message)
    except Exception:
        # The layer's backend (Redis) is down or refused: say so rather than answer 500.
        logger.exception("could not send call.end to %s", call.group_name)
        if not stale:
            return EndOutcome.UNREACHABLE
    if stale:
        end_call(call.pk, EndReason.OPERATOR, detail)
        return EndOutcome.ENDED_STALE
    return EndOutcome.SIGNALLED
