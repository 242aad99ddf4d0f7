"""Recovering recordings whose recorder died with its server process (the purge task).

A crash leaves the recording's settled audio as parts in storage and its row "recording";
the purge's reconcile step composes the WAV once the call is over (ended, or lost) instead
of deleting the parts as orphans, and never says the retention policy removed anything.
"""

from __future__ import annotations

import hashlib
import wave
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import time_machine
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from calls.mixer import wav_header
from calls.models import CallSession, CallStatus, ConsentScope, Recording, RecordingStatus
from calls.recordings import RecordingWriter, part_name, parts_folder, recover_recording
from retention import purge as purge_module
from retention.models import PurgeLog, PurgeTrigger, RetentionPolicy
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, CallFactory
from tests.retention.conftest import age_file
from tests.retention.test_purge import run_purge

pytestmark = pytest.mark.django_db(transaction=True)

FRAME = 4  # bytes of one stereo PCM16 sample


def audio(seconds: float, seed: int) -> bytes:
    frames = int(24_000 * seconds)
    return np.random.default_rng(seed).integers(-3000, 3000, 2 * frames, dtype="<i2").tobytes()


def crashed_call(
    world: TenantWorld,
    pieces: list[bytes],
    *,
    ended_hours_ago: float | None = 2,
    started_hours_ago: float | None = None,
    status: str = RecordingStatus.RECORDING,
    legal_hold: bool = False,
) -> tuple[CallSession, Recording]:
    """A recorded call whose recorder flushed ``pieces`` as parts, then died.

    ``ended_hours_ago``: the call was marked ended; None with ``started_hours_ago``: it is
    still marked active (its process died before it could end it).
    """
    now = timezone.now()
    if ended_hours_ago is not None:
        ended = now - timedelta(hours=ended_hours_ago)
        times = {
            "status": CallStatus.ENDED,
            "started_at": ended - timedelta(minutes=5),
            "ended_at": ended,
        }
    else:
        assert started_hours_ago is not None
        times = {
            "status": CallStatus.ACTIVE,
            "started_at": now - timedelta(hours=started_hours_ago),
        }
    call = CallFactory(
        agent=AgentFactory(tenant=world.tenant, recording_offered=True),
        consent_scope=ConsentScope.RECORDING,
        legal_hold=legal_hold,
        **times,
    )
    recording = Recording.objects.create(
        call=call, tenant=world.tenant, status=status, started_at=call.started_at
    )
    writer = RecordingWriter(world.tenant.public_id, call.public_id)
    for piece in pieces:
        writer.write_part(piece)
    return call, recording


def parts_dir(media: Path, call: CallSession) -> Path:
    return media / parts_folder(call.tenant.public_id, call.public_id)


def assert_recovered(media: Path, call: CallSession, audio_bytes: bytes) -> Recording:
    recording = Recording.objects.get(call=call)
    assert recording.status == RecordingStatus.COMPLETE
    assert recording.file.name == f"recordings/{call.tenant.public_id}/{call.public_id}.wav"
    content = (media / recording.file.name).read_bytes()
    assert content == wav_header(len(audio_bytes)) + audio_bytes
    assert recording.size_bytes == len(content)
    assert recording.sha256 == hashlib.sha256(content).hexdigest()
    assert recording.duration_ms == len(audio_bytes) // FRAME * 1000 // 24_000
    assert recording.completed_at is not None
    with wave.open(str(media / recording.file.name)) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 24_000)
    call.refresh_from_db()
    assert call.recording_purged_at is None
    return recording


def test_the_parts_of_an_ended_call_are_composed_into_its_recording(
    tenant_a: TenantWorld, media: Path
) -> None:
    """No policy at all: the tenant keeps recordings forever, and gets this one back."""
    pieces = [audio(1.0, 1), audio(0.5, 2), audio(2.0, 3)]
    call, _ = crashed_call(tenant_a, pieces)
    for path in parts_dir(media, call).iterdir():
        age_file(path, hours=3)  # old enough to look orphaned

    run_purge()

    assert_recovered(media, call, b"".join(pieces))
    assert not parts_dir(media, call).exists()
    # Nothing was removed, so a tenant without a policy gets no purge log either.
    assert not PurgeLog.objects.filter(tenant=tenant_a.tenant).exists()


def test_a_lost_call_still_marked_active_is_recovered(tenant_a: TenantWorld, media: Path) -> None:
    pieces = [audio(1.0, 4)]
    lost, _ = crashed_call(tenant_a, pieces, ended_hours_ago=None, started_hours_ago=7)
    live, _ = crashed_call(tenant_a, pieces, ended_hours_ago=None, started_hours_ago=2)

    run_purge()

    assert_recovered(media, lost, pieces[0])
    # Two hours in, the call may still be running: its recorder owns its parts.
    assert Recording.objects.get(call=live).status == RecordingStatus.RECORDING
    assert len(list(parts_dir(media, live).iterdir())) == 1


def test_a_call_that_ended_within_the_margin_keeps_its_parts_however_old(
    tenant_a: TenantWorld, media: Path
) -> None:
    call, _ = crashed_call(tenant_a, [audio(0.2, 5)], ended_hours_ago=0.25)
    for path in parts_dir(media, call).iterdir():
        age_file(path, hours=2)  # written early in a long call

    run_purge()

    assert Recording.objects.get(call=call).status == RecordingStatus.RECORDING
    assert len(list(parts_dir(media, call).iterdir())) == 1

    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        run_purge()
    assert_recovered(media, call, audio(0.2, 5))


def test_a_recorder_that_died_before_its_first_part_leaves_a_failed_recording(
    tenant_a: TenantWorld, media: Path
) -> None:
    call, recording = crashed_call(tenant_a, [])
    # Another call's file: storage is there, only this recording has none.
    crashed_call(tenant_a, [audio(0.1, 6)])

    run_purge()

    recording.refresh_from_db()
    assert (recording.status, recording.file.name) == (RecordingStatus.FAILED, "")
    assert recording.completed_at is not None
    call.refresh_from_db()
    assert call.recording_purged_at is None  # the call page says it failed, not purged
    page = tenant_a.client_for("owner").get(reverse("dashboard:call_detail", args=[call.public_id]))
    assert page.status_code == 200
    assert b"The recording of this call failed" in page.content
    assert b"removed by the retention policy" not in page.content


def test_a_failed_recording_with_parts_left_is_recovered_and_one_without_stays_failed(
    tenant_a: TenantWorld, media: Path
) -> None:
    pieces = [audio(0.3, 7), audio(0.3, 8)]
    with_parts, _ = crashed_call(tenant_a, pieces, status=RecordingStatus.FAILED)
    without, _ = crashed_call(tenant_a, [], status=RecordingStatus.FAILED)

    run_purge()

    assert_recovered(media, with_parts, b"".join(pieces))
    assert Recording.objects.filter(call=without).values_list("status", "file").get() == (
        RecordingStatus.FAILED,
        "",
    )
    without.refresh_from_db()
    assert without.recording_purged_at is None


def test_parts_with_a_gap_cannot_be_placed_so_the_recording_is_marked_failed(
    tenant_a: TenantWorld, media: Path
) -> None:
    call, recording = crashed_call(tenant_a, [audio(0.1, 9), audio(0.1, 10), audio(0.1, 11)])
    default_storage.delete(part_name(tenant_a.tenant.public_id, call.public_id, 2))

    run_purge()

    recording.refresh_from_db()
    assert (recording.status, recording.file.name) == (RecordingStatus.FAILED, "")
    assert not parts_dir(media, call).exists() or not any(parts_dir(media, call).iterdir())
    assert not (media / f"recordings/{tenant_a.tenant.public_id}/{call.public_id}.wav").exists()


def test_a_last_part_cut_mid_frame_by_the_crash_loses_only_that_half_frame(
    tenant_a: TenantWorld, media: Path
) -> None:
    whole, cut = audio(0.5, 12), audio(0.5, 13)[:-3]
    call, _ = crashed_call(tenant_a, [whole, cut])

    run_purge()

    assert_recovered(media, call, whole + cut[: len(cut) // FRAME * FRAME])


def test_a_held_call_is_recovered_and_keeps_its_parts_until_the_hold_is_lifted(
    tenant_a: TenantWorld, media: Path
) -> None:
    call, _ = crashed_call(tenant_a, [audio(0.4, 14)], legal_hold=True)

    run_purge()

    assert_recovered(media, call, audio(0.4, 14))
    parts = list(parts_dir(media, call).iterdir())
    assert len(parts) == 1

    CallSession.objects.filter(pk=call.pk).update(legal_hold=False)
    age_file(parts[0], hours=2)
    run_purge()
    assert not parts[0].exists()  # now only a leftover of a complete recording
    assert (media / Recording.objects.get(call=call).file.name).exists()


def test_a_half_written_wav_of_the_dead_recorder_is_replaced(
    tenant_a: TenantWorld, media: Path
) -> None:
    call, _ = crashed_call(tenant_a, [audio(0.3, 15)])
    stale = media / f"recordings/{tenant_a.tenant.public_id}/{call.public_id}.wav"
    stale.write_bytes(b"RIFF\x00\x00")  # it died composing

    run_purge()

    recording = assert_recovered(media, call, audio(0.3, 15))
    assert media / recording.file.name == stale
    assert [path.name for path in stale.parent.glob("*.wav")] == [stale.name]


def test_parts_no_recording_waits_for_are_removed_as_orphans(
    tenant_a: TenantWorld, media: Path
) -> None:
    """Parts of a call with no recording row, and parts left next to a complete WAV."""
    no_row, row = crashed_call(tenant_a, [audio(0.1, 16)])
    row.delete()
    complete, _ = crashed_call(tenant_a, [])
    writer = RecordingWriter(tenant_a.tenant.public_id, complete.public_id)
    writer.write_part(audio(0.1, 17))  # the WAV was composed, its parts never deleted
    stored = writer.write_wav()
    Recording.objects.filter(call=complete).update(status="complete", file=stored.name)
    leftovers = [*parts_dir(media, no_row).iterdir(), *parts_dir(media, complete).iterdir()]
    for path in leftovers:
        age_file(path, hours=2)

    run_purge()

    assert not any(path.exists() for path in leftovers)
    assert (media / stored.name).exists()
    log = PurgeLog.objects.get(tenant=tenant_a.tenant)
    assert log.orphan_files == len(leftovers) == 2


def test_a_storage_error_leaves_everything_for_the_next_run(
    tenant_a: TenantWorld, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    call, recording = crashed_call(tenant_a, [audio(0.2, 18)])
    for path in parts_dir(media, call).iterdir():
        age_file(path, hours=3)

    def unavailable(*args: object, **kwargs: object) -> str:
        raise OSError("bucket unavailable")

    with monkeypatch.context() as patch:
        patch.setattr(default_storage, "save", unavailable)
        run_purge()
    recording.refresh_from_db()
    assert recording.status == RecordingStatus.RECORDING
    assert len(list(parts_dir(media, call).iterdir())) == 1

    run_purge()
    assert_recovered(media, call, audio(0.2, 18))


def test_a_dry_run_recovers_nothing(tenant_a: TenantWorld, media: Path) -> None:
    call, recording = crashed_call(tenant_a, [audio(0.2, 19)])
    _, empty = crashed_call(tenant_a, [])

    purge_module.purge_expired(
        trigger=PurgeTrigger.COMMAND, dry_run=True, tenants=[tenant_a.tenant]
    )

    assert Recording.objects.get(pk=recording.pk).status == RecordingStatus.RECORDING
    assert Recording.objects.get(pk=empty.pk).status == RecordingStatus.RECORDING
    assert len(list(parts_dir(media, call).iterdir())) == 1
    assert not list(media.rglob("*.wav"))


def test_a_policy_that_made_the_recording_due_removes_it_instead(
    tenant_a: TenantWorld, media: Path
) -> None:
    """Recovery runs after the policy: a recording past its days is not composed first."""
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, recording_days=0)
    call, _ = crashed_call(tenant_a, [audio(0.2, 20)])
    for path in parts_dir(media, call).iterdir():
        age_file(path, hours=3)

    run_purge()

    assert not Recording.objects.filter(call=call).exists()
    call.refresh_from_db()
    assert call.recording_purged_at is not None  # here the policy did remove it
    assert not list(media.rglob("*.wav"))
    assert not parts_dir(media, call).exists() or not any(parts_dir(media, call).iterdir())


def test_recovery_of_a_row_removed_meanwhile_leaves_no_file(
    tenant_a: TenantWorld, media: Path
) -> None:
    """An erasure or a purge deleted the row while the WAV was being composed."""
    _, recording = crashed_call(tenant_a, [audio(0.2, 21)])
    recording = Recording.objects.select_related("call", "tenant").get(pk=recording.pk)
    Recording.objects.filter(pk=recording.pk).delete()

    assert recover_recording(recording) is None

    assert not list(media.rglob("*.wav"))
