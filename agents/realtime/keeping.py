"""What a live call keeps, written durably: its transcript and usage in batches, and its
end, retried while the database is away and spooled to disk if that outlasts the retries
(or the server is stopping). Never dropped. Knows nothing of the transport.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings

from agents.realtime.access import CallGrant
from agents.realtime.tracker import CallTracker, Pending
from calls import spool
from calls.ledger import end_call, store_progress
from calls.models import EndReason
from foundation.call_threads import on_call_threads

logger = logging.getLogger("koe.realtime")

# Writing a call's end while the database is away (within KOE_END_RETRY_SECONDS, or
# SHUTDOWN_END_RETRY_SECONDS when the server is stopping; then it is spooled).
END_RETRY_FIRST_SECONDS = 0.25
END_RETRY_LONGEST_SECONDS = 4.0
SHUTDOWN_END_RETRY_SECONDS = 3.0


class CallKeeping:
    """The writes of one call. ``tracker`` is set once the call is live; ``log`` logs with
    the call's tenant and id."""

    def __init__(self, grant: CallGrant, log: Callable[..., None]) -> None:
        self.grant = grant
        self.log = log
        self.tracker: CallTracker | None = None
        self.lock = asyncio.Lock()

    async def flush(self, *, even_if_empty: bool = False) -> None:
        """Store the batch the tracker holds; on failure it is kept for the next flush."""
        if self.tracker is None:
            return
        async with self.lock:
            pending = self.tracker.take_pending()
            if not pending and not even_if_empty:
                return
            try:
                await on_call_threads(store_progress)(self.grant.call_id, **self.progress(pending))
            except Exception:
                self.tracker.restore_pending(pending)  # e.g. a database hiccup mid-call
                raise

    async def flush_in_passing(self) -> None:
        """A flush during the call: if the database is away, the batch waits for the next
        one (the call goes on; its end retries until the batch is stored)."""
        try:
            await self.flush()
        except Exception as error:
            self.log("flush failed, kept for the next one: %r", error)

    async def write_end(self, reason: str, detail: str, *, ended_at: datetime) -> None:
        """The last batch and the end, retried with backoff, spooled if they cannot wait."""
        patience = settings.KOE_END_RETRY_SECONDS
        if reason == EndReason.SERVER_SHUTDOWN:
            patience = min(patience, SHUTDOWN_END_RETRY_SECONDS)  # the process must go
        deadline = time.monotonic() + patience
        delay = END_RETRY_FIRST_SECONDS
        flushed, ended = self.tracker is None, False  # a call cut short while connecting
        while True:
            error: BaseException | None = None
            try:
                if not flushed:
                    await self.flush(even_if_empty=True)
                    flushed = True
            except Exception as failure:
                error = failure
            try:
                # Also when the batch could not be written: the end is what frees the
                # tenant's slot; the batch then waits in the spool.
                if not ended:
                    await on_call_threads(end_call)(
                        self.grant.call_id, reason, detail, ended_at=ended_at
                    )
                    ended = True
            except Exception as failure:
                error = failure
            if flushed and ended:
                return
            if time.monotonic() + delay > deadline:
                await self._spool(reason, detail, ended_at, error)
                return
            if delay == END_RETRY_FIRST_SECONDS:
                self.log("writing the end failed (%r); retrying", error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, END_RETRY_LONGEST_SECONDS)

    async def _spool(
        self, reason: str, detail: str, ended_at: datetime, error: BaseException | None
    ) -> None:
        pending = self.tracker.take_pending() if self.tracker is not None else Pending()
        end = {
            **self.progress(pending),
            "reason": reason,
            "detail": detail,
            "ended_at": ended_at.isoformat(),
        }
        try:
            await asyncio.to_thread(spool.write, self.grant.call_id, self.grant.call_public_id, end)
        except Exception:
            logger.exception(
                "the end could not be written (%r) nor spooled tenant=%s call=%s",
                error,
                self.grant.tenant_public_id,
                self.grant.call_public_id,
            )

    def progress(self, pending: Pending) -> dict[str, Any]:
        """store_progress's arguments for a batch: what consent lets the call keep."""
        tracker = self.tracker
        return {
            "transcript": [vars(entry) for entry in pending.transcript]
            if self.grant.stores_transcript
            else [],
            "usage": [{"response_id": u.response_id, "usage": u.usage} for u in pending.usage],
            "interrupted_item_ids": pending.interrupted_item_ids,
            "turn_count": tracker.turn_count if tracker is not None else 0,
            "latencies_ms": list(tracker.latencies_ms) if tracker is not None else [],
        }
