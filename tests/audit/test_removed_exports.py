"""Exports removed by erasure: the page and the download say so, and an export being written
when its calls are erased throws its file away instead of publishing it.

Transactional tests: a removed export's file is deleted once the removal commits.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit import export_formats, exports
from audit.models import CallExport, ExportedCall, ExportStatus
from audit.tasks import remove_expired_exports_task, run_export_task
from calls.models import CallSession
from retention.erasure import erase_end_user
from tenancy.roles import Role
from tests.api import api_client
from tests.audit.conftest import add_conversation, ended_call
from tests.conftest import TenantWorld

pytestmark = pytest.mark.django_db(transaction=True)

REF = "cust-42"


def erase(world: TenantWorld) -> dict[str, Any]:
    response = api_client(world.secret).post(f"/v1/end_users/{REF}/erasure")
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def exports_folder(world: TenantWorld) -> Path:
    return Path(settings.MEDIA_ROOT) / "exports" / world.tenant.public_id


def stored_files(world: TenantWorld) -> list[str]:
    folder = exports_folder(world)
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def pending_export(world: TenantWorld, **params: Any) -> CallExport:
    return CallExport.objects.create(
        tenant=world.tenant,
        requested_by_name="owner",
        params=params,
        format="json",
        expires_at=timezone.now() + timedelta(days=1),
    )


def download_link(client: Client, export: CallExport) -> str:
    page = client.get(reverse("dashboard:export_detail", args=[export.public_id]))
    match = re.search(r'<a class="btn" href="([^"]+)" download>', page.content.decode())
    assert match, "the page offers no download"
    return html.unescape(match.group(1))


def test_a_removed_export_says_why_and_refuses_its_download(tenant_a: TenantWorld) -> None:
    call = ended_call(tenant_a.tenant, end_user_ref=REF)
    add_conversation(call)
    client = tenant_a.client_for(Role.AUDITOR)
    response = client.post(
        reverse("dashboard:export_create"), {"call": call.public_id, "format": "csv"}
    )
    export = CallExport.objects.get()
    assert response.status_code == 302 and export.status == ExportStatus.DONE
    link = download_link(client, export)  # a link taken before the erasure
    assert stored_files(tenant_a) == [f"{export.public_id}.csv"]

    assert erase(tenant_a)["exports"] == 1

    page = client.get(reverse("dashboard:export_detail", args=[export.public_id]))
    text = html.unescape(page.content.decode())
    assert "This export was removed on" in text
    assert "it held a call whose end user asked for their data to be erased" in text
    assert "download>" not in text and "hx-trigger" not in text
    refused = client.get(link, follow=True)
    assert refused.redirect_chain[-1][0] == reverse(
        "dashboard:export_detail", args=[export.public_id]
    )
    assert "This export was removed: it held a call whose end user asked" in html.unescape(
        refused.content.decode()
    )
    assert "Content-Disposition" not in refused
    listing = client.get(reverse("dashboard:export_list")).content.decode()
    assert '<span class="role-badge">Removed</span>' in listing
    assert stored_files(tenant_a) == []


@pytest.mark.parametrize(
    ("erase_when", "calls_read"),
    [
        # Erased after the first call was written: the task stops at its next progress save
        # and never reads the second call.
        ("write", 1),
        # Erased after every call was written: the finished file is never published.
        ("finish", 2),
    ],
)
def test_an_export_erased_while_it_is_written_publishes_nothing(
    tenant_a: TenantWorld, monkeypatch: pytest.MonkeyPatch, erase_when: str, calls_read: int
) -> None:
    monkeypatch.setattr(exports, "CHUNK_SIZE", 1)
    now = timezone.now()
    theirs = ended_call(tenant_a.tenant, end_user_ref=REF, started_at=now - timedelta(hours=2))
    later = ended_call(tenant_a.tenant, started_at=now - timedelta(hours=1))
    for call in (theirs, later):
        add_conversation(call)
    export = pending_export(tenant_a, filters={})
    real = getattr(export_formats.JsonWriter, erase_when)
    erased: list[int] = []

    def erasing(self: export_formats.JsonWriter, *args: Any) -> None:
        real(self, *args)
        if not erased:
            # As a concurrent erasure request would, between two steps of the task.
            erased.append(erase_end_user(tenant_a.tenant, REF).counts.exports)

    monkeypatch.setattr(export_formats.JsonWriter, erase_when, erasing)

    assert run_export_task.delay(export.pk).get() == "removed"

    assert erased == [1]
    export.refresh_from_db()
    assert export.is_removed and export.removed_reason == "erasure"
    assert export.is_finished and export.file.name == ""
    assert stored_files(tenant_a) == []
    recorded = set(ExportedCall.objects.filter(export=export).values_list("call_id", flat=True))
    assert recorded == {call.pk for call in (theirs, later)[:calls_read]}
    # Running it again (a redelivered task) writes nothing either.
    assert run_export_task.delay(export.pk).get() == ExportStatus.FAILED
    assert stored_files(tenant_a) == []


def test_the_calls_of_a_chunk_are_recorded_before_their_transcripts_are_read(
    tenant_a: TenantWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "CHUNK_SIZE", 2)
    calls = [ended_call(tenant_a.tenant) for _ in range(3)]
    for call in calls:
        add_conversation(call)
    export = pending_export(tenant_a, filters={})
    recorded_when_read: list[set[int]] = []
    real_build = exports.build_timeline

    def watching(call: CallSession, *args: Any) -> Any:
        recorded_when_read.append(
            set(ExportedCall.objects.filter(export=export).values_list("call_id", flat=True))
        )
        return real_build(call, *args)

    monkeypatch.setattr(exports, "build_timeline", watching)

    assert run_export_task.delay(export.pk).get() == ExportStatus.DONE

    first_two = {calls[0].pk, calls[1].pk}
    everything = first_two | {calls[2].pk}
    assert recorded_when_read == [first_two, first_two, everything]
    assert default_storage.exists(CallExport.objects.get(pk=export.pk).file.name)


def test_a_file_storage_could_not_delete_is_deleted_by_the_daily_task(
    tenant_a: TenantWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = ended_call(tenant_a.tenant, end_user_ref=REF)
    add_conversation(call)
    export = pending_export(tenant_a, call=call.public_id)
    assert run_export_task.delay(export.pk).get() == ExportStatus.DONE
    export.refresh_from_db()
    name = export.file.name
    storage_class = type(default_storage._wrapped)  # type: ignore[attr-defined]
    real_delete = storage_class.delete

    def unavailable(self: Any, file_name: str) -> None:
        raise OSError("storage unavailable")

    monkeypatch.setattr(storage_class, "delete", unavailable)

    assert erase(tenant_a)["exports"] == 1

    export.refresh_from_db()
    # Removed (the download refuses) though the file is still there, and still named.
    assert export.is_removed and export.file.name == name and default_storage.exists(name)
    assert download_link_absent(tenant_a.client_for(Role.AUDITOR), export)
    monkeypatch.setattr(storage_class, "delete", real_delete)

    assert remove_expired_exports_task.delay().get() == 1

    export.refresh_from_db()
    assert export.file.name == "" and not default_storage.exists(name)
    assert stored_files(tenant_a) == []


def download_link_absent(client: Client, export: CallExport) -> bool:
    page = client.get(reverse("dashboard:export_detail", args=[export.public_id]))
    return page.status_code == 200 and " download>" not in page.content.decode()
