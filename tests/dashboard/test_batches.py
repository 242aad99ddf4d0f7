"""Dashboard pages for batch calls: a CSV upload (its faults by row), a batch's progress,
pausing and cancelling; auditors follow batches without seeing who is called."""

from __future__ import annotations

from datetime import time
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from agents.telephony.batches import BatchSpec, EntrySpec, create_batch
from agents.telephony.models import CallBatch
from tenancy.roles import Role
from tests.conftest import TenantWorld
from tests.telephony.conftest import NUMBER, Line, make_line

pytestmark = pytest.mark.django_db

CSV = "to,end_user,time_zone,first_name\n+14155550171,patient-1,Europe/Paris,Ana\n"


@pytest.fixture
def line(tenant_a: TenantWorld) -> Line:
    return make_line(tenant_a)


def upload(line: Line, text: str, **changes: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Recalls",
        "agent": line.agent.public_id,
        "phone_number": line.number.public_id,
        "window_start": "09:00",
        "window_end": "18:00",
        "time_zone": "America/New_York",
        "concurrency": "3",
        "max_attempts": "2",
        "retry_delay_minutes": "45",
        "entries_file": SimpleUploadedFile("numbers.csv", text.encode(), "text/csv"),
    }
    data.update(changes)
    return data


def make_batch(world: TenantWorld, line: Line) -> CallBatch:
    spec = BatchSpec(
        agent_id=line.agent.public_id,
        from_number=NUMBER,
        name="Recalls",
        window_start=time(9),
        window_end=time(18),
        entries=[EntrySpec("+14155550171", end_user="patient-1")],
    )
    return create_batch(world.tenant, spec)


def test_an_editor_creates_a_batch_from_a_csv_file(tenant_a: TenantWorld, line: Line) -> None:
    client = tenant_a.client_for(Role.EDITOR)
    csv = CSV + "+44 20 7183 8750,patient-2,,Ben\n"

    response = client.post(reverse("dashboard:batch_create"), upload(line, csv))

    batch = CallBatch.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:batch_detail", args=[batch.public_id])
    assert (batch.name, batch.agent, batch.phone_number) == ("Recalls", line.agent, line.number)
    assert (batch.concurrency, batch.max_attempts, batch.retry_delay_minutes) == (3, 2, 45)
    entries = list(batch.entries.values_list("to", "end_user", "time_zone", "metadata"))
    assert entries == [
        ("+14155550171", "patient-1", "Europe/Paris", {"first_name": "Ana"}),
        ("+442071838750", "patient-2", "America/New_York", {"first_name": "Ben"}),
    ]


def test_a_bad_row_is_named_and_nothing_is_created(tenant_a: TenantWorld, line: Line) -> None:
    client = tenant_a.client_for(Role.EDITOR)
    csv = CSV + "555-0172,patient-2,,Ben\n+14155550173,patient-3,Mars/Base,Cy\n"

    response = client.post(reverse("dashboard:batch_create"), upload(line, csv))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Row 3 (to): Enter the number in E.164 form" in page
    assert "Row 4 (time_zone): Mars/Base is not an IANA time zone" in page
    assert not CallBatch.objects.exists()


def test_a_file_without_a_to_column_gets_a_readable_error(
    tenant_a: TenantWorld, line: Line
) -> None:
    client = tenant_a.client_for(Role.EDITOR)

    response = client.post(reverse("dashboard:batch_create"), upload(line, "phone\n+14155550171\n"))

    assert "Row 1 must name the columns, one of them “to”" in response.content.decode()
    assert not CallBatch.objects.exists()


def test_a_foreign_number_cannot_be_chosen(
    tenant_a: TenantWorld, tenant_b: TenantWorld, line: Line
) -> None:
    foreign = make_line(tenant_b, number="+14155550999")
    client = tenant_a.client_for(Role.EDITOR)

    response = client.post(
        reverse("dashboard:batch_create"),
        upload(line, CSV, phone_number=foreign.number.public_id, agent=foreign.agent.public_id),
    )

    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"agent", "phone_number"}
    assert not CallBatch.objects.exists()


def test_the_batch_page_shows_progress_and_the_numbers_to_admins(
    tenant_a: TenantWorld, line: Line
) -> None:
    batch = make_batch(tenant_a, line)
    admin = tenant_a.client_for(Role.ADMIN)

    listed = admin.get(reverse("dashboard:batch_list"))
    page = admin.get(reverse("dashboard:batch_detail", args=[batch.public_id]))

    assert batch.name in listed.content.decode()
    assert page.context["progress"].counts["pending"] == 1
    assert "+14155550171" in page.content.decode() and "patient-1" in page.content.decode()
    assert "Cancel batch" in page.content.decode()


@pytest.mark.parametrize("role", [Role.EDITOR, Role.AUDITOR])
def test_editors_and_auditors_follow_a_batch_without_seeing_who_is_called(
    role: str, tenant_a: TenantWorld, line: Line
) -> None:
    batch = make_batch(tenant_a, line)

    page = tenant_a.client_for(role).get(reverse("dashboard:batch_detail", args=[batch.public_id]))

    assert page.status_code == 200
    assert page.context["progress"].counts["pending"] == 1
    assert "+14155550171" not in page.content.decode()
    assert "patient-1" not in page.content.decode()


def test_auditors_change_no_batch(tenant_a: TenantWorld, line: Line) -> None:
    batch = make_batch(tenant_a, line)
    auditor = tenant_a.client_for(Role.AUDITOR)

    page = auditor.get(reverse("dashboard:batch_detail", args=[batch.public_id]))

    assert "Cancel batch" not in page.content.decode()
    assert auditor.get(reverse("dashboard:batch_create")).status_code == 403
    assert auditor.post(reverse("dashboard:batch_pause", args=[batch.public_id])).status_code == 403


def test_an_editor_pauses_resumes_and_cancels(tenant_a: TenantWorld, line: Line) -> None:
    batch = make_batch(tenant_a, line)
    client = tenant_a.client_for(Role.EDITOR)

    def act(action: str) -> str:
        response = client.post(reverse(f"dashboard:batch_{action}", args=[batch.public_id]))
        assert response.status_code == 302
        batch.refresh_from_db()
        return batch.status

    assert act("pause") == "paused"
    assert act("resume") == "running"
    assert act("cancel") == "cancelled"
    assert batch.entries.get().status == "cancelled"
    refused = client.post(reverse("dashboard:batch_resume", args=[batch.public_id]), follow=True)
    assert "it cannot be resumed" in refused.content.decode()
