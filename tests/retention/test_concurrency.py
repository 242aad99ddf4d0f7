"""Two purges at once remove each row and file once (PostgreSQL: real row locks)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction

from calls.models import CallSession, Recording
from retention.models import PurgeLog, PurgeTrigger, RetentionPolicy
from retention.purge import purge_expired
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.retention.conftest import stored_call

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)
        finally:
            connection.close()  # each thread has its own connection

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def test_two_runs_at_once_purge_each_call_once(
    tenant_a: TenantWorld, tenant_b: TenantWorld, media: Path
) -> None:
    for world in (tenant_a, tenant_b):
        agent = AgentFactory(tenant=world.tenant)
        RetentionPolicy.objects.create(tenant=world.tenant, recording_days=1, transcript_days=1)
        for _ in range(12):
            stored_call(agent, ended_days_ago=3)
    files = list(media.rglob("*.wav"))
    assert len(files) == 24
    start = threading.Barrier(2)

    def run() -> None:
        start.wait(timeout=10)
        purge_expired(trigger=PurgeTrigger.BEAT)

    threads = [in_thread(run) for _ in range(2)]
    for thread, errors in threads:
        thread.join(timeout=60)
        assert not errors, errors

    assert not any(path.exists() for path in files)
    assert not Recording.objects.exists()
    logs = PurgeLog.objects.all()
    assert all(log.error == "" for log in logs)
    assert sum(log.recordings for log in logs) == 24
    assert sum(log.recording_files for log in logs) == 24
    assert sum(log.transcripts for log in logs) == 24
    assert sum(log.transcript_items for log in logs) == 48
    assert sum(log.tool_invocations for log in logs) == 24


def test_calls_another_transaction_holds_are_passed_over_not_waited_for(
    tenant_a: TenantWorld, media: Path
) -> None:
    """A purge never queues behind a lock (a live update, another worker's batch): it
    skips those calls, and the next run purges them, once."""
    agent = AgentFactory(tenant=tenant_a.tenant)
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, recording_days=1)
    locked_call = stored_call(agent, ended_days_ago=3)
    free_call = stored_call(agent, ended_days_ago=3)
    holding, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with transaction.atomic():
            list(CallSession.objects.filter(pk=locked_call.call.pk).select_for_update())
            holding.set()
            assert release.wait(timeout=30)

    holder, errors = in_thread(hold_lock)
    try:
        assert holding.wait(timeout=10)
        [first] = purge_expired(trigger=PurgeTrigger.BEAT, tenants=[tenant_a.tenant])
    finally:
        release.set()
        holder.join(timeout=30)
    assert not errors, errors

    assert first.counts.recordings == 1
    assert locked_call.has_recording_row()
    assert not free_call.has_recording_row()

    [second] = purge_expired(trigger=PurgeTrigger.BEAT, tenants=[tenant_a.tenant])
    assert second.counts.recordings == 1
    assert not locked_call.has_recording_row()
    assert not (media / locked_call.file_name).exists()
