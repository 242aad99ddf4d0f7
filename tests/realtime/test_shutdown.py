"""Ending live calls when the server stops (agents.realtime.shutdown), without a server.

The whole path under a real server is tests/realtime/test_over_daphne.py; here the pieces:
which calls are ended, and that one failing does not stop the others."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from agents.realtime import shutdown


@dataclass(eq=False)
class FakeCall:
    ended: bool = False
    fails: bool = False
    ended_for_shutdown: list[bool] = field(default_factory=list)

    async def end_for_shutdown(self) -> None:
        self.ended_for_shutdown.append(True)
        if self.fails:
            raise RuntimeError("could not end")
        self.ended = True


def test_every_live_call_is_ended_and_ended_ones_are_left_alone() -> None:
    live, failing, done = FakeCall(), FakeCall(fails=True), FakeCall(ended=True)

    async def scenario() -> None:
        for call in (live, failing, done):
            shutdown.track(call)  # no reactor running here: no trigger installed
        deferred = shutdown._end_live_calls()
        assert deferred is not None
        finished = asyncio.Event()
        deferred.addBoth(lambda result: finished.set())
        await asyncio.wait_for(finished.wait(), 5)

    asyncio.run(scenario())
    assert live.ended and live.ended_for_shutdown == [True]
    assert failing.ended_for_shutdown == [True]  # its failure stopped nobody else
    assert done.ended_for_shutdown == []
    assert not shutdown._installed


def test_with_no_live_call_there_is_nothing_to_wait_for() -> None:
    shutdown._live.clear()
    assert shutdown._end_live_calls() is None
