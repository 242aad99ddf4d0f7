"""Exports on the real Redis broker with a real Celery worker process, end to end: the
dashboard queues the task on commit, the worker writes the file to the shared storage,
the page reports it ready and the signed link downloads it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.urls import reverse

from audit.models import AccessAction, AccessLog, CallExport, ExportStatus
from tenancy.roles import Role
from tests.audit.conftest import add_conversation, ended_call
from tests.audit.test_exports import download
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.live import Worker, celery_worker

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(settings: Any) -> Iterator[Worker]:
    settings.CELERY_TASK_ALWAYS_EAGER = False  # the task goes to the worker through Redis
    # The worker writes where this process reads: the same (temporary) media folder.
    with celery_worker(MEDIA_ROOT=str(settings.MEDIA_ROOT)) as running:
        yield running


def wait_until_finished(export: CallExport, worker: Worker, timeout: float = 60) -> CallExport:
    deadline = time.monotonic() + timeout
    while True:
        export.refresh_from_db()
        if export.is_finished:
            return export
        assert time.monotonic() < deadline, worker.output()
        time.sleep(0.2)


def test_a_filtered_export_is_written_by_the_worker_and_downloaded(
    tenant_a: TenantWorld, worker: Worker
) -> None:
    desk = AgentFactory(tenant=tenant_a.tenant)
    calls = [ended_call(tenant_a.tenant, agent=desk) for _ in range(12)]
    for call in calls:
        add_conversation(call)
    ended_call(tenant_a.tenant)  # another agent's call, not asked for
    client = tenant_a.client_for(Role.AUDITOR)

    response = client.post(
        reverse("dashboard:export_create"),
        {"query": urlencode({"agent": desk.public_id}), "format": "json"},
    )

    assert response.status_code == 302
    export = wait_until_finished(CallExport.objects.get(), worker)
    assert export.status == ExportStatus.DONE, export.error
    assert (export.total, export.done) == (12, 12)
    page = client.get(reverse("dashboard:export_detail", args=[export.public_id]))
    assert "hx-trigger" not in page.content.decode()
    document = json.loads(download(client, export))
    assert sorted(record["id"] for record in document["calls"]) == sorted(
        call.public_id for call in calls
    )
    assert all(len(record["transcript"]) == 4 for record in document["calls"])
    assert list(AccessLog.objects.order_by("pk").values_list("action", flat=True)) == [
        AccessAction.EXPORT,
        AccessAction.DOWNLOAD_EXPORT,
    ]
    assert "run_export_task[" in worker.output()
