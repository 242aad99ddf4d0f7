"""A server crash mid-call loses at most the last seconds of the recording, not the call's.

A recorded call runs through the broker (scripted provider, fake recorder clock) until its
audio has been flushed as parts; then the process "dies": the recorder never finishes, and
with a real crash nothing marks the call ended either. The hourly purge task, run later,
composes the recording from the parts.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from agents.models import Agent
from agents.realtime import keeping as keeping_module
from calls import recordings
from calls.models import CallSession, CallStatus, Recording, RecordingStatus
from retention.tasks import purge_expired
from tenancy.roles import Role
from tests.conftest import TenantWorld
from tests.realtime.doubles import ScriptedProvider
from tests.realtime.helpers import eventually
from tests.recordings.broker_call import (
    FakeClock,
    agent_says,
    open_call,
    read_wav,
    runs,
    send_caller_audio,
    tone,
)

pytestmark = pytest.mark.django_db(transaction=True)

RATE = 24_000
FRAME_BYTES = 4


def crash_the_recorder(monkeypatch: pytest.MonkeyPatch, *, call_ends: bool) -> None:
    """From now on the call's process is dead: its recorder writes nothing more.

    ``call_ends=False`` also loses the end of the call (the row stays active), as a real
    crash does; True is a process that recorded the call's end but not the recording's.
    """

    async def dead(self: recordings.CallRecorder) -> None:
        self.is_finished = True  # the periodic flush stops, nothing is composed
        self._closing.set()

    monkeypatch.setattr(recordings.CallRecorder, "finish", dead)
    if not call_ends:
        monkeypatch.setattr(keeping_module, "end_call", lambda *args, **kwargs: None)


@pytest.mark.parametrize(
    ("call_ends", "purge_after"),
    [
        (False, timedelta(hours=7)),  # lost: still "active" past the lost-call rule
        (True, timedelta(hours=2)),  # ended, past the safety margin
    ],
    ids=["lost-call", "ended-call"],
)
def test_the_purge_recovers_the_recording_of_a_call_whose_server_crashed(
    scripted_provider: type[ScriptedProvider],
    recording_agent: Agent,
    tenant_a: TenantWorld,
    clock: FakeClock,
    media_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    call_ends: bool,
    purge_after: timedelta,
) -> None:
    tenant_id = tenant_a.tenant.public_id

    async def scenario() -> str:
        communicator, connection = await open_call(
            scripted_provider, recording_agent, tenant_a, "recording"
        )
        # The caller speaks at 1.0 s; the agent answers at 2.0 s for a second.
        await send_caller_audio(
            communicator, connection, clock, 1.0, [tone(40, 1001 + k) for k in range(10)]
        )
        clock.now = 2.0
        await agent_says(communicator, connection, "resp_1", "item_a", [tone(500, 7)] * 2)
        # At 10 s the periodic flushes have written everything settled: the first 8 s.
        clock.now = 10.0
        call = await CallSession.objects.aget()
        parts = media_root / "recordings" / tenant_id / "parts" / call.public_id

        def flushed_bytes() -> int:
            return sum(path.stat().st_size for path in parts.glob("*.pcm"))

        await eventually(lambda: parts.is_dir() and flushed_bytes() == 8 * RATE * FRAME_BYTES)
        crash_the_recorder(monkeypatch, call_ends=call_ends)
        await communicator.disconnect()
        return call.public_id

    call_id = asyncio.run(scenario())

    call = CallSession.objects.get(public_id=call_id)
    assert call.status == (CallStatus.ENDED if call_ends else CallStatus.ACTIVE)
    recording = Recording.objects.get(call=call)
    assert recording.status == RecordingStatus.RECORDING  # what the crash left
    assert not (media_root / "recordings" / tenant_id / f"{call_id}.wav").exists()

    with time_machine.travel(timezone.now() + purge_after):
        purge_expired.apply().get()

    recording.refresh_from_db()
    assert recording.status == RecordingStatus.COMPLETE
    assert recording.file.name == f"recordings/{tenant_id}/{call_id}.wav"
    assert recording.duration_ms == 8_000
    assert recording.completed_at is not None
    path = media_root / recording.file.name
    assert recording.size_bytes == path.stat().st_size
    params, left, right = read_wav(path)
    assert (params.nchannels, params.framerate, params.nframes) == (2, RATE, 8 * RATE)
    assert runs(left) == [(1000 + 40 * k, 1040 + 40 * k, 1001 + k) for k in range(10)]
    assert runs(right) == [(2000, 3000, 7)]
    assert not (media_root / "recordings" / tenant_id / "parts" / call_id).exists()
    call.refresh_from_db()
    assert call.recording_purged_at is None

    # The call page plays it, and says nothing about a retention policy.
    page = tenant_a.client_for(Role.AUDITOR).get(reverse("dashboard:call_detail", args=[call_id]))
    assert page.status_code == 200
    assert b"<audio" in page.content
    assert b"removed by" not in page.content and b"no longer available" not in page.content
