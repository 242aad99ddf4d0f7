"""The purge task on the real Redis broker with a real Celery worker process.

The worker shares the test database (a transactional test: it must see committed rows)
and this test's MEDIA_ROOT, so it deletes the very files the test checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from retention.models import PurgeLog, RetentionPolicy
from retention.tasks import purge_expired
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.live import Worker, celery_worker
from tests.retention.conftest import stored_call

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(settings: Any, media: Path) -> Iterator[Worker]:
    settings.CELERY_TASK_ALWAYS_EAGER = False  # the task goes to the worker through Redis
    with celery_worker(MEDIA_ROOT=str(media)) as running:
        yield running


def test_the_purge_task_runs_on_a_worker_and_purges_once(
    tenant_a: TenantWorld, media: Path, worker: Worker
) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, recording_days=7, transcript_days=7)
    expired = [stored_call(agent, ended_days_ago=30) for _ in range(3)]
    recent = stored_call(agent, ended_days_ago=1)

    runs = [purge_expired.delay(), purge_expired.delay()]
    first, second = (run.get(timeout=60) for run in runs)

    assert (first["recordings"], first["recording_files"], first["transcripts"]) == (3, 3, 3)
    assert (second["recordings"], second["recording_files"], second["transcripts"]) == (0, 0, 0)
    for stored in expired:
        assert not stored.has_recording_row()
        assert not (media / stored.file_name).exists()
        assert stored.transcript_count() == 0
    assert (media / recent.file_name).exists()
    logs = PurgeLog.objects.filter(tenant=tenant_a.tenant).order_by("started_at")
    assert [(log.trigger, log.recordings) for log in logs] == [("beat", 3), ("beat", 0)]
    assert "retention.tasks.purge_expired" in worker.output()
