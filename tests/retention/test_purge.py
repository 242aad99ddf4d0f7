"""The retention purge, run as beat runs it (the Celery task, executed in this process).

Transactional tests: recording files are deleted once the row deletion commits, which a
test wrapped in one transaction would never do.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.storage import default_storage
from django.utils import timezone

from calls.models import CallSession, ConsentScope, Recording, TranscriptItem
from events.models import OutboundEvent
from retention import purge as purge_module
from retention.models import PurgeLease, PurgeLog, PurgeTrigger, RetentionPolicy
from retention.tasks import purge_expired
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.retention.conftest import StoredCall, age_file, stored_call
from tools.invocations import ToolInvocation

pytestmark = pytest.mark.django_db(transaction=True)


def run_purge() -> dict[str, int]:
    result: dict[str, int] = purge_expired.apply().get()
    return result


def log_of(world: TenantWorld) -> PurgeLog:
    return PurgeLog.objects.filter(tenant=world.tenant).latest("started_at")


def assert_transcript_purged(stored: StoredCall) -> None:
    call = stored.refresh()
    assert stored.transcript_count() == 0
    assert call.transcript_text == ""
    assert call.follow_up_reason == ""
    assert call.transcript_purged_at is not None
    invocation = stored.invocation()  # the row stays, for tool statistics
    assert invocation.arguments is None
    assert invocation.result == ""
    assert invocation.status == "succeeded"
    assert invocation.duration_ms == 120


def assert_transcript_kept(stored: StoredCall) -> None:
    call = stored.refresh()
    assert stored.transcript_count() == 2
    assert call.transcript_text
    assert call.transcript_purged_at is None
    assert stored.invocation().arguments == {"party_size": 4, "name": "Ada"}


def assert_recording_purged(stored: StoredCall, media: Path) -> None:
    assert not stored.has_recording_row()
    assert not (media / stored.file_name).exists()
    assert stored.refresh().recording_purged_at is not None


def assert_recording_kept(stored: StoredCall, media: Path) -> None:
    assert stored.has_recording_row()
    assert (media / stored.file_name).read_bytes().startswith(b"RIFF")
    assert stored.refresh().recording_purged_at is None


@pytest.fixture
def scenario(tenant_a: TenantWorld, tenant_b: TenantWorld, media: Path) -> dict[str, Any]:
    """Tenant A keeps recordings 30 days and transcripts 60. Its agent "Instant" keeps
    recordings 0 days (transcripts as the tenant), its agent "No transcripts" keeps
    transcripts 0 days (recordings as the tenant). Tenant B has no policy: it keeps
    everything forever."""
    standard = AgentFactory(tenant=tenant_a.tenant, name="Standard")
    instant = AgentFactory(tenant=tenant_a.tenant, name="Instant")
    chatty = AgentFactory(tenant=tenant_a.tenant, name="No transcripts")
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, recording_days=30, transcript_days=60)
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, agent=instant, recording_days=0)
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, agent=chatty, transcript_days=0)
    other_agent = AgentFactory(tenant=tenant_b.tenant)
    return {
        "old": stored_call(standard, ended_days_ago=90),
        "middle": stored_call(standard, ended_days_ago=45),
        "recent": stored_call(standard, ended_days_ago=10),
        "instant_recent": stored_call(instant, ended_days_ago=0.01),
        "instant_live": stored_call(instant, live=True),
        "chatty_recent": stored_call(chatty, ended_days_ago=1),
        "held": stored_call(standard, ended_days_ago=90, legal_hold=True),
        "deleted_agent": stored_call(None, tenant=tenant_a.tenant, ended_days_ago=90),
        "other_tenant": stored_call(other_agent, ended_days_ago=400),
    }


def test_the_purge_removes_exactly_what_is_past_its_policy(
    scenario: dict[str, Any], tenant_a: TenantWorld, tenant_b: TenantWorld, media: Path
) -> None:
    totals = run_purge()

    # Past both: transcript and recording go (the agent-less call follows the tenant).
    for name in ("old", "deleted_agent"):
        assert_transcript_purged(scenario[name])
        assert_recording_purged(scenario[name], media)
    # 45 days: past the recordings' 30, within the transcripts' 60.
    assert_recording_purged(scenario["middle"], media)
    assert_transcript_kept(scenario["middle"])
    assert_recording_kept(scenario["recent"], media)
    assert_transcript_kept(scenario["recent"])
    # The override of 0 days: gone at the first run after the call ends, not before.
    assert_recording_purged(scenario["instant_recent"], media)
    assert_transcript_kept(scenario["instant_recent"])
    assert_recording_kept(scenario["instant_live"], media)
    assert_transcript_kept(scenario["instant_live"])
    assert_transcript_purged(scenario["chatty_recent"])
    assert_recording_kept(scenario["chatty_recent"], media)
    # Legal hold, and a tenant without a policy: untouched.
    for name in ("held", "other_tenant"):
        assert_transcript_kept(scenario[name])
        assert_recording_kept(scenario[name], media)

    log = log_of(tenant_a)
    assert (log.trigger, log.dry_run, log.error) == ("beat", False, "")
    assert log.transcripts == 3
    assert log.transcript_items == 6
    assert log.tool_invocations == 3
    assert log.recordings == 4
    assert log.recording_files == 4
    assert log.held_calls == 1
    assert (log.orphan_files, log.missing_files, log.events) == (0, 0, 0)
    assert totals["recordings"] == 4
    # Tenant B keeps everything and reconcile found nothing: no log to write.
    assert not PurgeLog.objects.filter(tenant=tenant_b.tenant).exists()
    # The metadata of purged calls stays.
    assert CallSession.objects.filter(tenant=tenant_a.tenant).count() == 8


def test_a_second_run_purges_nothing_and_logs_zero(
    scenario: dict[str, Any], tenant_a: TenantWorld, media: Path
) -> None:
    run_purge()
    files_after_first = sorted(path.name for path in media.rglob("*.wav"))

    run_purge()

    second = log_of(tenant_a)
    assert PurgeLog.objects.filter(tenant=tenant_a.tenant).count() == 2
    assert second.transcripts == second.recordings == second.recording_files == 0
    assert second.transcript_items == second.tool_invocations == 0
    assert sorted(path.name for path in media.rglob("*.wav")) == files_after_first


def test_a_dry_run_counts_and_changes_nothing(
    scenario: dict[str, Any], tenant_a: TenantWorld, media: Path
) -> None:
    files_before = sorted(path.name for path in media.rglob("*"))
    items_before = TranscriptItem.objects.count()

    [result] = purge_module.purge_expired(
        trigger=PurgeTrigger.COMMAND, dry_run=True, tenants=[tenant_a.tenant]
    )

    assert sorted(path.name for path in media.rglob("*")) == files_before
    assert TranscriptItem.objects.count() == items_before
    assert Recording.objects.count() == 9  # every call of the scenario has one
    assert_transcript_kept(scenario["old"])
    assert result.log is not None and result.log.dry_run
    assert (result.counts.transcripts, result.counts.recordings) == (3, 4)
    assert result.counts.recording_files == 4
    # The real run then removes exactly what the dry run counted.
    run_purge()
    real = log_of(tenant_a)
    assert (real.transcripts, real.transcript_items, real.recordings) == (3, 6, 4)


def test_changing_the_policy_applies_to_existing_calls(tenant_a: TenantWorld, media: Path) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    stored = stored_call(agent, ended_days_ago=20)
    run_purge()  # no policy yet: kept forever
    assert_recording_kept(stored, media)

    RetentionPolicy.objects.create(tenant=tenant_a.tenant, recording_days=30)
    run_purge()
    assert_recording_kept(stored, media)

    # Eleven days on, the call is 31 days old.
    with time_machine.travel(timezone.now() + timedelta(days=11)):
        run_purge()
    assert_recording_purged(stored, media)
    assert_transcript_kept(stored)  # transcript_days empty: forever


def test_a_call_lost_while_active_ages_from_its_start(tenant_a: TenantWorld, media: Path) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, recording_days=1)
    lost = stored_call(agent, live=True)
    CallSession.objects.filter(pk=lost.call.pk).update(
        started_at=timezone.now() - timedelta(days=3)
    )

    run_purge()

    assert_recording_purged(lost, media)


def test_a_recording_whose_file_is_already_gone_is_purged_without_error(
    tenant_a: TenantWorld, media: Path
) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, recording_days=7)
    gone = stored_call(agent, ended_days_ago=30)
    kept = stored_call(agent, ended_days_ago=30)
    (media / gone.file_name).unlink()

    run_purge()

    log = log_of(tenant_a)
    assert log.error == ""
    assert (log.recordings, log.recording_files) == (2, 1)
    assert not gone.has_recording_row()
    assert_recording_purged(kept, media)


def test_a_file_left_by_a_crash_after_the_rows_went_is_reconciled(
    tenant_a: TenantWorld, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies between committing the row deletion and deleting the file."""
    agent = AgentFactory(tenant=tenant_a.tenant)
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, recording_days=7)
    stored = stored_call(agent, ended_days_ago=30)
    path = media / stored.file_name

    def crash(name: str) -> None:
        raise OSError("worker lost")

    with monkeypatch.context() as patch:
        patch.setattr(default_storage, "delete", crash)
        run_purge()
    assert not stored.has_recording_row()
    assert path.exists()
    assert log_of(tenant_a).recording_files == 0

    # Just written files are left alone (the margin); this one is old.
    age_file(path, hours=2)
    run_purge()

    assert not path.exists()
    assert log_of(tenant_a).orphan_files == 1


def test_reconcile_removes_orphans_and_clears_rows_whose_file_is_lost(
    tenant_a: TenantWorld, media: Path
) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)  # no policy: only reconcile works here
    folder = media / "recordings" / tenant_a.tenant.public_id
    kept = stored_call(agent, ended_days_ago=5)
    lost_file = stored_call(agent, ended_days_ago=5)
    (media / lost_file.file_name).unlink()
    held = stored_call(agent, ended_days_ago=5, legal_hold=True)
    (media / held.file_name).unlink()  # held: its row stays even so
    ended = stored_call(agent, ended_days_ago=1, with_recording=False)
    live = stored_call(agent, live=True, with_recording=False)
    orphan_old = folder / "rec_stray.wav"
    orphan_new = folder / "rec_being_written.wav"
    orphan_held = folder / f"{held.call.public_id}-copy.wav"
    parts_of_ended = folder / "parts" / ended.call.public_id / "000001.pcm"
    parts_of_live = folder / "parts" / live.call.public_id / "000001.pcm"
    for path in (orphan_old, orphan_new, orphan_held, parts_of_ended, parts_of_live):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * 64)
    for path in (orphan_old, orphan_held, parts_of_ended, parts_of_live, media / kept.file_name):
        age_file(path, hours=3)

    run_purge()

    assert not orphan_old.exists()
    assert not parts_of_ended.exists()
    assert orphan_new.exists()  # younger than the margin: maybe being written
    assert parts_of_live.exists()  # the call is still recording
    assert orphan_held.exists()
    assert (media / kept.file_name).exists() and kept.has_recording_row()
    # A lost file is not a purge: the row stays, no longer naming a file, and the call
    # page says the recording is no longer available, not that retention removed it.
    lost_row = Recording.objects.get(call=lost_file.call)
    assert (lost_row.status, lost_row.file.name) == ("complete", "")
    assert lost_file.refresh().recording_purged_at is None
    assert Recording.objects.get(call=held.call).file.name == held.file_name
    log = log_of(tenant_a)
    assert (log.orphan_files, log.missing_files) == (2, 1)
    assert log.recordings == 0


def test_reconcile_keeps_rows_when_storage_holds_none_of_the_tenants_files(
    tenant_a: TenantWorld, media: Path
) -> None:
    """An empty storage looks like a wrong MEDIA_ROOT, not like every file lost."""
    agent = AgentFactory(tenant=tenant_a.tenant)
    stored = stored_call(agent, ended_days_ago=5)
    (media / stored.file_name).unlink()

    run_purge()

    assert stored.has_recording_row()
    assert not PurgeLog.objects.filter(tenant=tenant_a.tenant, missing_files__gt=0).exists()


def test_sent_events_past_their_days_go_except_pending_and_held(
    tenant_a: TenantWorld, media: Path
) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, event_log_days=14)
    held = stored_call(agent, ended_days_ago=40, legal_hold=True, consent=ConsentScope.NONE)
    old = timezone.now() - timedelta(days=20)

    def event(status: str, created_at: Any, **payload: Any) -> OutboundEvent:
        return OutboundEvent.objects.create(
            tenant=tenant_a.tenant,
            type="call.ended",
            payload=payload,
            status=status,
            created_at=created_at,
        )

    delivered = event("delivered", old, call_id="call_x", end_user_ref="u1")
    failed = event("failed", old, call_id="call_y")
    ping = event("delivered", old, message="test")
    pending = event("pending", old, call_id="call_z")
    about_held = event("delivered", old, call_id=held.call.public_id)
    recent = event("delivered", timezone.now() - timedelta(days=2), call_id="call_w")

    run_purge()

    remaining = set(OutboundEvent.objects.values_list("pk", flat=True))
    assert remaining == {pending.pk, about_held.pk, recent.pk}
    assert {delivered.pk, failed.pk, ping.pk}.isdisjoint(remaining)
    assert log_of(tenant_a).events == 3


def test_a_tenant_another_run_is_purging_is_skipped_until_its_lease_expires(
    tenant_a: TenantWorld, media: Path
) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, recording_days=0)
    stored = stored_call(agent, ended_days_ago=1)
    PurgeLease.objects.create(
        tenant=tenant_a.tenant, holder="other", expires_at=timezone.now() + timedelta(minutes=5)
    )

    totals = run_purge()

    assert totals["busy"] == 1
    assert_recording_kept(stored, media)
    assert not PurgeLog.objects.filter(tenant=tenant_a.tenant).exists()

    # The other worker died: its lease runs out and the next run takes over.
    with time_machine.travel(timezone.now() + timedelta(minutes=20)):
        run_purge()
    assert_recording_purged(stored, media)
    assert PurgeLease.objects.get(tenant=tenant_a.tenant).holder == ""


def test_test_runs_of_tools_are_not_call_content(tenant_a: TenantWorld, media: Path) -> None:
    """Tool invocations from the dashboard's test button belong to no call: kept."""
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, transcript_days=0)
    test_run = ToolInvocation.objects.create(
        tenant=tenant_a.tenant,
        tool_name="book_table",
        function_call_id="test_1",
        idempotency_key="test_1",
        source="test",
        execution="inline",
        stores_content=True,
        arguments={"party_size": 2},
        result="ok",
        created_at=timezone.now() - timedelta(days=3),
    )

    run_purge()

    test_run.refresh_from_db()
    assert test_run.arguments == {"party_size": 2}


def test_one_tenants_failure_is_logged_and_the_others_are_still_purged(
    tenant_a: TenantWorld, tenant_b: TenantWorld, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = {}
    for world in (tenant_a, tenant_b):
        RetentionPolicy.objects.create(tenant=world.tenant, recording_days=1)
        stored[world.tenant.pk] = stored_call(AgentFactory(tenant=world.tenant), ended_days_ago=5)
    real_events = purge_module._purge_events

    def broken_for_a(tenant: Any, *args: Any, **kwargs: Any) -> None:
        if tenant.pk == tenant_a.tenant.pk:
            raise RuntimeError("storage exploded")
        real_events(tenant, *args, **kwargs)

    monkeypatch.setattr(purge_module, "_purge_events", broken_for_a)

    run_purge()

    failed = log_of(tenant_a)
    assert (failed.error, failed.recordings) == ("RuntimeError", 1)  # what it did first
    assert (log_of(tenant_b).error, log_of(tenant_b).recordings) == ("", 1)
    assert_recording_purged(stored[tenant_b.tenant.pk], media)
    assert PurgeLease.objects.get(tenant=tenant_a.tenant).holder == ""


def test_the_task_running_out_of_time_stops_the_run_and_logs_it(
    tenant_a: TenantWorld, tenant_b: TenantWorld, media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for world in (tenant_a, tenant_b):
        RetentionPolicy.objects.create(tenant=world.tenant, recording_days=1)

    def out_of_time(*args: Any, **kwargs: Any) -> None:
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(purge_module, "_purge_events", out_of_time)

    with pytest.raises(SoftTimeLimitExceeded):
        purge_expired.apply(throw=True).get()

    [log] = PurgeLog.objects.all()  # the first tenant; the run stopped there
    assert log.error == "SoftTimeLimitExceeded"
    assert not PurgeLease.objects.exclude(holder="").exists()
