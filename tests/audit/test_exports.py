"""Exports through the dashboard: one call or a filtered set, as JSON, CSV or text; progress;
signed, short-lived downloads checked against the viewer's role; consent respected."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import time_machine
from django.core.files.storage import default_storage
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit import export_formats, exports
from audit.models import AccessAction, AccessLog, CallExport, ExportStatus
from audit.tasks import remove_expired_exports_task, run_export_task
from calls.models import CallSession, ConsentScope, TranscriptItem
from tenancy.models import Membership
from tenancy.roles import Role
from tests.audit.conftest import add_conversation, ended_call
from tests.conftest import TenantWorld
from tests.factories import AgentFactory

Export = Callable[..., CallExport]


@pytest.fixture
def export_as(django_capture_on_commit_callbacks: Any) -> Export:
    """POST the export form as a client; the task runs when the request's work commits."""

    def export(client: Client, **data: Any) -> CallExport:
        before = set(CallExport.objects.values_list("pk", flat=True))
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(reverse("dashboard:export_create"), data)
        created = CallExport.objects.exclude(pk__in=before).get()
        assert response.status_code == 302
        assert response["Location"] == reverse("dashboard:export_detail", args=[created.public_id])
        return created

    return export


def download_link(client: Client, export: CallExport) -> str:
    response = client.get(reverse("dashboard:export_detail", args=[export.public_id]))
    assert response.status_code == 200
    match = re.search(r'<a class="btn" href="([^"]+)" download>', response.content.decode())
    assert match, "the page offers no download"
    return html.unescape(match.group(1))


def download(client: Client, export: CallExport) -> str:
    response = client.get(download_link(client, export))
    assert response.status_code == 200, response
    assert response["Content-Disposition"].startswith("attachment")
    return b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]


def test_an_auditor_exports_one_call_as_json_and_downloads_it(
    tenant_a: TenantWorld, export_as: Export
) -> None:
    call = ended_call(tenant_a.tenant, end_user_ref="customer-42")
    add_conversation(call)
    client = tenant_a.client_for(Role.AUDITOR)

    export = export_as(client, call=call.public_id, format="json")

    export.refresh_from_db()
    assert (export.status, export.total, export.done) == (ExportStatus.DONE, 1, 1)
    assert export.finished_at is not None and export.size_bytes > 0
    document = json.loads(download(client, export))
    assert document["export"]["id"] == export.public_id
    [record] = document["calls"]
    assert record["id"] == call.public_id
    assert record["end_user_ref"] == "customer-42"
    assert record["consent"] == {
        "scope": "transcript",
        "method": "widget_checkbox",
        "at": call.consent_at.isoformat() if call.consent_at else None,
        "version": 3,
        "text": "May we keep a transcript of this call?",
    }
    assert [(turn["kind"], turn["offset_ms"]) for turn in record["transcript"]] == [
        ("caller", 1500),
        ("tool_call", 2250),
        ("tool_result", 2750),
        ("agent", 3000),
    ]
    assert record["transcript"][3]["latency_ms"] == 612
    assert record["transcript"][3]["interrupted"] is True
    [invocation] = record["tool_invocations"]
    assert invocation["arguments"] == {"doctor": "Mori"}
    assert invocation["result"] == '{"open": true}'
    logs = list(AccessLog.objects.order_by("pk").values_list("action", "call", "role"))
    assert logs == [
        (AccessAction.EXPORT, call.pk, Role.AUDITOR),
        (AccessAction.DOWNLOAD_EXPORT, call.pk, Role.AUDITOR),
    ]
    assert AccessLog.objects.get(action=AccessAction.EXPORT).detail == {
        "export": export.public_id,
        "format": "json",
    }


def test_csv_has_one_row_per_turn_with_the_calls_metadata(
    tenant_a: TenantWorld, export_as: Export
) -> None:
    call = ended_call(tenant_a.tenant)
    add_conversation(call)
    client = tenant_a.client_for(Role.OWNER)

    rows = list(
        csv.DictReader(
            io.StringIO(download(client, export_as(client, call=call.public_id, format="csv")))
        )
    )

    assert [row["speaker"] for row in rows] == ["Caller", "Tool call", "Tool result", "Agent"]
    assert {row["call_id"] for row in rows} == {call.public_id}
    assert {row["consent_scope"] for row in rows} == {"transcript"}
    assert rows[0]["text"] == "Is Dr Mori in today?"
    assert rows[1]["tool_arguments"] == '{\n  "doctor": "Mori"\n}'
    assert (rows[3]["latency_ms"], rows[3]["interrupted"], rows[3]["offset_ms"]) == (
        "612",
        "yes",
        "3000",
    )


def test_text_export_reads_as_a_transcript(tenant_a: TenantWorld, export_as: Export) -> None:
    call = ended_call(tenant_a.tenant)
    add_conversation(call)
    client = tenant_a.client_for(Role.AUDITOR)

    text = download(client, export_as(client, call=call.public_id, format="txt"))

    assert text.startswith(f"Call {call.public_id}\n")
    assert "Consent: transcript, given by widget_checkbox, prompt version 3" in text
    assert "[0:01.5] Caller: Is Dr Mori in today?\n" in text
    assert '[0:02.2] Tool call check_schedule: {\n  "doctor": "Mori"\n}' in text
    assert (
        "[0:03.0] Agent (612 ms): Yes, until five. Shall I book [interrupted by the caller]" in text
    )


@pytest.mark.parametrize("export_format", ["json", "csv", "txt"])
def test_a_call_without_transcript_consent_exports_metadata_only(
    tenant_a: TenantWorld, export_as: Export, export_format: str
) -> None:
    call = ended_call(tenant_a.tenant, consent_scope=ConsentScope.NONE, end_user_ref="cust-7")
    add_conversation(call, say="My card number is 4111 1111")  # rows that must never leave
    client = tenant_a.client_for(Role.AUDITOR)

    content = download(client, export_as(client, call=call.public_id, format=export_format))

    assert call.public_id in content and "cust-7" in content
    assert "4111" not in content
    assert "Mori" not in content and "open" not in content.replace("opened", "")
    if export_format == "json":
        [record] = json.loads(content)["calls"]
        assert record["transcript"] is None
        assert record["tool_invocations"][0]["status"] == "succeeded"
        assert "arguments" not in record["tool_invocations"][0]
    if export_format == "txt":
        assert "No transcript: the caller did not consent to storing one." in content


def test_a_purged_transcript_says_when_retention_removed_it(
    tenant_a: TenantWorld, export_as: Export
) -> None:
    removed = timezone.now() - timedelta(days=1)
    call = ended_call(tenant_a.tenant, transcript_purged_at=removed)
    client = tenant_a.client_for(Role.AUDITOR)

    text = download(client, export_as(client, call=call.public_id, format="txt"))

    assert f"Transcript removed by retention policy on {removed.isoformat()}" in text


def test_csv_cells_that_a_spreadsheet_would_run_are_made_text(
    tenant_a: TenantWorld, export_as: Export
) -> None:
    formulas = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)"]
    call = ended_call(tenant_a.tenant, end_detail="=cmd|' /C calc'!A0")
    for sequence, formula in enumerate(formulas, start=1):
        TranscriptItem.objects.create(call=call, sequence=sequence, role="user", text=formula)
    client = tenant_a.client_for(Role.AUDITOR)

    rows = list(
        csv.DictReader(
            io.StringIO(download(client, export_as(client, call=call.public_id, format="csv")))
        )
    )

    assert [row["text"] for row in rows] == ["'" + formula for formula in formulas]
    assert {row["end_detail"] for row in rows} == {"'=cmd|' /C calc'!A0"}
    assert rows[0]["offset_ms"].isdigit()  # numbers are left alone


def test_a_filtered_set_exports_what_the_call_list_shows(
    tenant_a: TenantWorld, export_as: Export
) -> None:
    desk, sales = AgentFactory(tenant=tenant_a.tenant), AgentFactory(tenant=tenant_a.tenant)
    wanted = [ended_call(tenant_a.tenant, agent=desk) for _ in range(3)]
    ended_call(tenant_a.tenant, agent=sales)
    for call in wanted:
        add_conversation(call)
    query = urlencode({"agent": desk.public_id, "page": "2"})
    client = tenant_a.client_for(Role.AUDITOR)

    export = export_as(client, query=query, format="txt")

    export.refresh_from_db()
    assert export.params == {"filters": {"agent": [desk.public_id]}}
    assert (export.status, export.total) == (ExportStatus.DONE, 3)
    text = download(client, export)
    assert text.count("=" * 72) == 2
    assert [line.split()[1] for line in text.splitlines() if line.startswith("Call ")] == [
        call.public_id for call in sorted(wanted, key=lambda call: (call.started_at, call.pk))
    ]
    log = AccessLog.objects.get(action=AccessAction.EXPORT)
    assert log.call is None
    assert log.detail["filters"] == {"agent": [desk.public_id]}


def test_the_set_is_read_in_chunks_with_progress(
    tenant_a: TenantWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "CHUNK_SIZE", 2)
    for _ in range(5):
        add_conversation(ended_call(tenant_a.tenant))
    export = CallExport.objects.create(
        tenant=tenant_a.tenant,
        requested_by_name="owner",
        params={"filters": {}},
        format="json",
        expires_at=timezone.now() + timedelta(days=1),
    )
    progress: list[int] = []
    real_write = export_formats.JsonWriter.write

    def watching(self: export_formats.JsonWriter, record: dict[str, Any]) -> None:
        progress.append(CallExport.objects.get(pk=export.pk).done)
        real_write(self, record)

    monkeypatch.setattr(export_formats.JsonWriter, "write", watching)

    with CaptureQueriesContext(connection) as queries:
        assert run_export_task.delay(export.pk).get() == ExportStatus.DONE

    # Three chunks of at most two calls, each with one query for their transcripts.
    transcript_reads = [q for q in queries if 'FROM "calls_transcriptitem"' in q["sql"]]
    assert len(transcript_reads) == 3
    assert progress == [0, 0, 2, 2, 4]
    export.refresh_from_db()
    assert (export.done, export.total) == (5, 5)
    with default_storage.open(export.file.name) as stored:
        assert len(json.load(stored)["calls"]) == 5


def test_running_the_task_again_leaves_one_file_with_the_same_content(
    tenant_a: TenantWorld,
) -> None:
    call = ended_call(tenant_a.tenant)
    add_conversation(call)
    export = CallExport.objects.create(
        tenant=tenant_a.tenant,
        requested_by_name="owner",
        params={"call": call.public_id},
        format="csv",
        expires_at=timezone.now() + timedelta(days=1),
    )
    run_export_task.delay(export.pk)
    export.refresh_from_db()
    first_name = export.file.name
    CallExport.objects.filter(pk=export.pk).update(status=ExportStatus.RUNNING)  # redelivered

    run_export_task.delay(export.pk)

    export.refresh_from_db()
    assert export.status == ExportStatus.DONE
    assert not default_storage.exists(first_name) or export.file.name == first_name
    assert len(default_storage.listdir(f"exports/{tenant_a.tenant.public_id}")[1]) == 1


def test_bad_requests_are_messages_not_exports(tenant_a: TenantWorld) -> None:
    call = ended_call(tenant_a.tenant)
    client = tenant_a.client_for(Role.AUDITOR)
    url = reverse("dashboard:export_create")

    bad_format = client.post(url, {"call": call.public_id, "format": "xlsx"}, follow=True)
    bad_filter = client.post(url, {"query": "date_from=yesterday", "format": "csv"}, follow=True)
    not_an_id = client.post(url, {"call": "a/b", "format": "csv"})

    assert "Choose a format for the export" in bad_format.content.decode()
    assert bad_format.redirect_chain[-1][0] == reverse(
        "dashboard:call_detail", args=[call.public_id]
    )
    assert "These filters are not valid" in html.unescape(bad_filter.content.decode())
    assert bad_filter.redirect_chain[-1][0].endswith("?date_from=yesterday")
    assert not_an_id.status_code == 404
    assert not CallExport.objects.exists() and not AccessLog.objects.exists()


def test_filters_that_no_longer_validate_fail_the_export_with_a_reason(
    tenant_a: TenantWorld,
) -> None:
    export = CallExport.objects.create(
        tenant=tenant_a.tenant,
        requested_by_name="owner",
        params={"filters": {"min_duration": ["-5"]}},
        format="csv",
        expires_at=timezone.now() + timedelta(days=1),
    )

    assert run_export_task.delay(export.pk).get() == "failed"

    export.refresh_from_db()
    assert export.status == ExportStatus.FAILED
    assert "min_duration" in export.error and not export.file
    page = tenant_a.client_for(Role.OWNER).get(
        reverse("dashboard:export_detail", args=[export.public_id])
    )
    assert "These filters are not valid" in html.unescape(page.content.decode())


def test_editors_may_not_export_and_other_tenants_get_404(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    own, foreign = ended_call(tenant_a.tenant), ended_call(tenant_b.tenant)
    url = reverse("dashboard:export_create")

    editor = tenant_a.client_for(Role.EDITOR).post(url, {"call": own.public_id, "format": "csv"})
    outsider = tenant_a.client_for(Role.OWNER).post(
        url, {"call": foreign.public_id, "format": "csv"}
    )

    assert (editor.status_code, outsider.status_code) == (403, 404)
    assert not CallExport.objects.exists()


# --- downloads -------------------------------------------------------------------------------


@pytest.fixture
def ready_export(tenant_a: TenantWorld, export_as: Export) -> tuple[CallExport, str]:
    call = ended_call(tenant_a.tenant)
    add_conversation(call)
    client = tenant_a.client_for(Role.ADMIN)
    export = export_as(client, call=call.public_id, format="json")
    return export, download_link(client, export)


def test_a_download_link_expires_after_a_few_minutes(
    tenant_a: TenantWorld, ready_export: tuple[CallExport, str]
) -> None:
    export, link = ready_export
    client = tenant_a.client_for(Role.ADMIN)

    with time_machine.travel(timezone.now() + timedelta(seconds=exports.DOWNLOAD_LINK_SECONDS + 5)):
        response = client.get(link, follow=True)

    assert response.redirect_chain[0][0] == reverse(
        "dashboard:export_detail", args=[export.public_id]
    )
    assert "This download link has expired" in response.content.decode()
    assert not AccessLog.objects.filter(action=AccessAction.DOWNLOAD_EXPORT).exists()


def test_a_tampered_link_or_one_for_another_export_is_refused(
    tenant_a: TenantWorld, ready_export: tuple[CallExport, str], export_as: Export
) -> None:
    export, link = ready_export
    client = tenant_a.client_for(Role.ADMIN)
    other = export_as(client, call=export.params["call"], format="csv")
    other_url = reverse("dashboard:export_download", args=[other.public_id])

    tampered = client.get(link[:-3] + "abc")
    swapped = client.get(other_url + "?" + link.split("?", 1)[1])

    assert tampered.status_code == swapped.status_code == 302
    assert not AccessLog.objects.filter(action=AccessAction.DOWNLOAD_EXPORT).exists()


def test_the_role_is_checked_when_the_link_is_used(
    tenant_a: TenantWorld, tenant_b: TenantWorld, ready_export: tuple[CallExport, str]
) -> None:
    _, link = ready_export
    admin = tenant_a.client_for(Role.ADMIN)
    Membership.objects.filter(pk=tenant_a.members[Role.ADMIN].pk).update(role=Role.EDITOR)

    demoted = admin.get(link)
    outsider = tenant_b.client_for(Role.OWNER).get(link)
    anonymous = Client().get(link)

    assert demoted.status_code == 403
    assert outsider.status_code == 404
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    # An auditor of the same tenant holding the link may download it.
    assert tenant_a.client_for(Role.AUDITOR).get(link).status_code == 200


def test_expired_exports_offer_no_download_and_lose_their_file(
    tenant_a: TenantWorld, ready_export: tuple[CallExport, str]
) -> None:
    export, link = ready_export
    client = tenant_a.client_for(Role.ADMIN)
    name = export.file.name
    CallExport.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(hours=1))

    page = client.get(reverse("dashboard:export_detail", args=[export.public_id]))
    refused = client.get(link, follow=True)
    removed = remove_expired_exports_task.delay().get()

    assert "This export has expired" in page.content.decode()
    assert "This export has no file to download." in refused.content.decode()
    assert removed == 1
    assert not default_storage.exists(name)
    assert CallExport.objects.get(pk=export.pk).file.name == ""


# --- pages -----------------------------------------------------------------------------------


def test_progress_is_polled_with_htmx_until_the_export_finishes(tenant_a: TenantWorld) -> None:
    export = CallExport.objects.create(
        tenant=tenant_a.tenant,
        requested_by_name="owner",
        params={"filters": {}},
        format="json",
        status=ExportStatus.RUNNING,
        total=400,
        done=100,
        expires_at=timezone.now() + timedelta(days=1),
    )
    client = tenant_a.client_for(Role.AUDITOR)
    url = reverse("dashboard:export_detail", args=[export.public_id])

    page = client.get(url).content.decode()
    partial = client.get(url, HTTP_HX_REQUEST="true").content.decode()

    assert 'hx-trigger="every 2s"' in page and "<html" in page
    assert partial.lstrip().startswith("<section") or "<html" not in partial
    assert "100 of 400 calls written (25%)" in partial
    CallExport.objects.filter(pk=export.pk).update(status=ExportStatus.FAILED, error="Broken.")
    finished = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in finished and "Broken." in finished


def test_the_export_list_shows_the_tenants_exports_only(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    def make(world: TenantWorld) -> CallExport:
        return CallExport.objects.create(
            tenant=world.tenant,
            requested_by_name=f"someone@{world.tenant.name}",
            params={"filters": {}},
            format="csv",
            expires_at=timezone.now() + timedelta(days=1),
        )

    own, foreign = make(tenant_a), make(tenant_b)
    client = tenant_a.client_for(Role.AUDITOR)

    listing = client.get(reverse("dashboard:export_list")).content.decode()

    assert own.public_id in listing and foreign.public_id not in listing
    assert (
        client.get(reverse("dashboard:export_detail", args=[foreign.public_id])).status_code == 404
    )
    assert tenant_a.client_for(Role.EDITOR).get(reverse("dashboard:export_list")).status_code == 403


def test_calls_are_ordered_oldest_first_in_a_set(tenant_a: TenantWorld) -> None:
    now = timezone.now()
    calls = [ended_call(tenant_a.tenant, started_at=now - timedelta(hours=h)) for h in (1, 3, 2)]

    ordered = [record["id"] for record in exports.records(CallSession.objects.all())]

    assert ordered == [calls[1].public_id, calls[2].public_id, calls[0].public_id]


def test_the_call_list_exports_the_calls_its_filters_find(
    tenant_a: TenantWorld, export_as: Export
) -> None:
    desk, sales = AgentFactory(tenant=tenant_a.tenant), AgentFactory(tenant=tenant_a.tenant)
    wanted = [ended_call(tenant_a.tenant, agent=desk) for _ in range(2)]
    ended_call(tenant_a.tenant, agent=sales)
    client = tenant_a.client_for(Role.AUDITOR)
    list_url = reverse("dashboard:call_list")

    page = client.get(list_url, {"agent": desk.public_id}).content.decode()
    match = re.search(r'<input type="hidden" name="query" value="([^"]*)">', page)
    assert match, "the list offers no export"
    export = export_as(client, query=html.unescape(match.group(1)), format="csv")

    export.refresh_from_db()
    assert (export.status, export.total) == (ExportStatus.DONE, 2)
    rows = list(csv.DictReader(io.StringIO(download(client, export))))
    assert sorted(row["call_id"] for row in rows) == sorted(call.public_id for call in wanted)
    editor_page = tenant_a.client_for(Role.EDITOR).get(list_url).content.decode()
    assert reverse("dashboard:export_create") not in editor_page


def test_a_lost_file_is_a_message_not_a_failure(
    tenant_a: TenantWorld, ready_export: tuple[CallExport, str]
) -> None:
    export, link = ready_export
    default_storage.delete(export.file.name)

    response = tenant_a.client_for(Role.ADMIN).get(link, follow=True)

    assert response.status_code == 200
    assert "cannot be read" in response.content.decode()
    assert not AccessLog.objects.filter(action=AccessAction.DOWNLOAD_EXPORT).exists()
