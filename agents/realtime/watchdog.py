"""What a live call checks every half second, beside its events: tool results that are
late, the tenant's spending, the call's duration and idleness, and its provider session's
age (replaced at a quiet moment before its limit)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from django.conf import settings

from billing import budgets
from calls.models import EndReason
from foundation.call_threads import on_call_threads

if TYPE_CHECKING:
    from agents.realtime.call import Call

logger = logging.getLogger("koe.realtime")

WATCHDOG_INTERVAL_SECONDS = 0.5


async def watch(call: Call) -> None:
    """Until the call ends (or ends it, as ``budget``, ``max_duration`` or ``idle_timeout``)."""
    budget_every = float(settings.KOE_BUDGET_CHECK_SECONDS)
    budget_checked = call.tracker.clock()
    while not call.ended:
        await asyncio.sleep(WATCHDOG_INTERVAL_SECONDS)
        if call.tools.awaited:
            await call.tools.give_up_on_late()
        clock = call.tracker.clock()
        # The tenant's spending, every few seconds rather than every tick: a cache read.
        if budget_every > 0 and clock - budget_checked >= budget_every:
            budget_checked = clock
            if await over_budget(call):
                await call.end(
                    EndReason.BUDGET, "The monthly spending limit was reached.", notify=True
                )
                return
        reached = limit_reached(call, clock)
        if reached is not None:
            await call.end(*reached, notify=True)
            return
        if call.provider.due_for_renewal(clock):
            call.spawn(call.provider.renew("its time limit is near"))


def limit_reached(call: Call, clock: float) -> tuple[str, str] | None:
    """The end reason and detail if the call has run too long or been idle too long."""
    if clock - call.started >= call.config.max_call_duration_seconds:
        return EndReason.MAX_DURATION, "The call reached its maximum duration."
    idle_timeout = call.config.idle_timeout_seconds
    if idle_timeout and clock - call.tracker.last_activity >= idle_timeout:
        return EndReason.IDLE_TIMEOUT, "The call was idle for too long."
    return None


async def over_budget(call: Call) -> bool:
    try:
        budget = await on_call_threads(budgets.budget_of)(call.grant.tenant_id)
    except Exception:  # the other limits must still be watched
        logger.exception("budget check failed tenant=%s call=%s", *call.ids())
        return False
    return budget.ends_live_calls
