"""This process's load, and admission by it: degrade by refusing new calls, never by
slowing the calls already here.

One serving process is one event loop. Past its capacity every event of every call on it
waits in the same queue: measured, 100 relayed calls on one process added seconds to each
(docs/performance.md). So each process counts the calls it holds (from admission until the
connection's consumer ends) and watches how late its loop runs (``watch_loop_lag``), and
refuses a new call, before any database work, when:

- it holds ``KOE_MAX_CALLS_PER_PROCESS`` calls (``server_busy``);
- its loop has lagged over ``KOE_MAX_LOOP_LAG_MS`` on average for the last two seconds,
  whatever the calls cost (``server_busy``): the built-in voice costs more than a relay;
- it is draining after SIGTERM (``server_draining``).

A refused caller gets an ``error`` event and close code 4013 (``CLOSE_TRY_AGAIN``): another
process can take the call. ``/readyz`` answers 503 in the same states, so a load balancer
or Kubernetes sends new calls elsewhere before any is refused; ``/healthz`` (liveness)
stays 200, as the process is well.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from prometheus_client import Gauge

logger = logging.getLogger("koe.load")

LAG_SAMPLE_SECONDS = 0.1
LAG_WINDOW = 20  # samples: two seconds

LOOP_LAG = Gauge(
    "koe_event_loop_lag_seconds", "How late this process's event loop runs (2 s average)"
)
CALLS_HELD = Gauge("koe_calls_held", "Calls this process holds, set-up included")
READY = Gauge("koe_ready", "1 while this process takes new calls (its /readyz answers 200)")
DRAINING = Gauge("koe_draining", "1 while this process drains before it stops")
READY.set(1)


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str


BUSY = Refusal(
    "server_busy",
    "This server is at capacity and takes no new call now; try again (another server can take it).",
)
DRAINING_REFUSAL = Refusal(
    "server_draining",
    "This server is shutting down and takes no new call; try again (another server can take it).",
)


@dataclass
class ProcessLoad:
    calls: int = 0
    # Calls weighted by what they cost this process (a WebRTC call's Opus costs several
    # relayed calls' CPU: KOE_WEBRTC_CALL_WEIGHT); KOE_MAX_CALLS_PER_PROCESS limits these.
    units: int = 0
    draining: bool = False
    _lags: deque[float] = field(default_factory=lambda: deque(maxlen=LAG_WINDOW))

    @property
    def loop_lag(self) -> float:
        """Seconds: how late the loop ran, on average over the last two seconds."""
        return sum(self._lags) / len(self._lags) if self._lags else 0.0

    def record_lag(self, lag: float) -> None:
        self._lags.append(max(0.0, lag))
        LOOP_LAG.set(self.loop_lag)
        self._publish()

    def refusal(self, weight: int = 1) -> Refusal | None:
        """Why a new call (of ``weight`` units) would be refused now; None when it would
        be taken."""
        if self.draining:
            return DRAINING_REFUSAL
        limit = settings.KOE_MAX_CALLS_PER_PROCESS
        if limit and self.units + weight > limit:
            return BUSY
        lag_limit = settings.KOE_MAX_LOOP_LAG_MS
        if lag_limit and self.loop_lag * 1000 > lag_limit:
            return BUSY
        return None

    def admit(self, weight: int = 1) -> Refusal | None:
        """Take a call slot (None), or say why not. A taken slot is ``release``d once,
        with the same weight."""
        refusal = self.refusal(weight)
        if refusal is None:
            self.calls += 1
            self.units += weight
            self._publish()
        return refusal

    def release(self, weight: int = 1) -> None:
        self.calls = max(0, self.calls - 1)
        self.units = max(0, self.units - weight)
        self._publish()

    def drain(self) -> None:
        self.draining = True
        self._publish()

    def report(self) -> dict[str, Any]:
        """What /readyz says: whether new calls are taken, and the load behind it."""
        refusal = self.refusal()
        return {
            "status": "ready" if refusal is None else "not_ready",
            **({"reason": refusal.code} if refusal else {}),
            "calls": self.calls,
            "call_units": self.units,
            "max_calls": settings.KOE_MAX_CALLS_PER_PROCESS,
            "loop_lag_ms": round(self.loop_lag * 1000, 1),
            "draining": self.draining,
        }

    def _publish(self) -> None:
        CALLS_HELD.set(self.calls)
        DRAINING.set(1 if self.draining else 0)
        READY.set(0 if self.refusal() else 1)


# This process's load (every call on this process's loop shares it).
LOAD = ProcessLoad()


async def watch_loop_lag(load: ProcessLoad = LOAD, interval: float = LAG_SAMPLE_SECONDS) -> None:
    """Sample how late a timer fires, every ``interval``: the loop's queueing delay, which
    every event of every call on this process also waits."""
    loop = asyncio.get_running_loop()
    while True:
        scheduled = loop.time() + interval
        await asyncio.sleep(interval)
        load.record_lag(loop.time() - scheduled)


_watching: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}


def ensure_watching(loop: asyncio.AbstractEventLoop) -> None:
    """Start ``watch_loop_lag`` on ``loop`` (the server's), once."""
    task = _watching.get(loop)
    if task is None or task.done():
        _watching[loop] = loop.create_task(watch_loop_lag(), name="koe-loop-lag")
