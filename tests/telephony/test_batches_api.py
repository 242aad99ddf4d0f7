"""Batch calls through the API: creating a batch (every fault named by row), following
it, pausing, resuming and cancelling it, and another tenant's batches staying out of reach."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.test import Client

from agents.telephony.models import BatchEntry, CallBatch
from tests.conftest import TenantWorld
from tests.fakes.twilio_rest import FakeTwilioRest
from tests.telephony.conftest import ACCOUNT_SID, AUTH_TOKEN, NUMBER, Line, make_line

pytestmark = pytest.mark.django_db

CALLEES = ["+14155550171", "+14155550172", "+14155550173"]
# 15:00 UTC: 11:00 in New York, inside a 09:00-18:00 window.
NEW_YORK_MORNING = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def carrier(settings: Any) -> Iterator[FakeTwilioRest]:
    with FakeTwilioRest(ACCOUNT_SID, AUTH_TOKEN) as fake:
        settings.KOE_TWILIO_API_URL = fake.base_url
        yield fake


@pytest.fixture
def batch_line(tenant_a: TenantWorld) -> Line:
    return make_line(tenant_a, greeting="Hello, this is Acme Dental calling.")


def api(world: TenantWorld) -> Client:
    return Client(headers={"Authorization": f"Bearer {world.secret}"})


def batch_body(line: Line, numbers: list[str] | None = None, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "agent": line.agent.public_id,
        "from": NUMBER,
        "name": "Recalls",
        "window": {"start": "09:00", "end": "18:00"},
        "time_zone": "America/New_York",
        "concurrency": 2,
        "max_attempts": 2,
        "retry_delay_minutes": 30,
        "entries": [
            {"to": number, "end_user": f"patient-{index}", "metadata": {"row": index}}
            for index, number in enumerate(numbers or CALLEES)
        ],
    }
    body.update(changes)
    return body


def create(world: TenantWorld, body: dict[str, Any]) -> Any:
    return api(world).post("/v1/batches", body, content_type="application/json")


def test_a_batch_is_stored_with_its_entries_and_answers_its_counts(
    tenant_a: TenantWorld, batch_line: Line
) -> None:
    response = create(tenant_a, batch_body(batch_line))

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("bat_")
    assert (body["status"], body["name"], body["agent"], body["from"]) == (
        "scheduled",
        "Recalls",
        batch_line.agent.public_id,
        NUMBER,
    )
    assert body["window"] == {"start": "09:00:00", "end": "18:00:00"}
    assert (body["concurrency"], body["max_attempts"], body["retry_delay_minutes"]) == (2, 2, 30)
    assert body["counts"]["pending"] == 3 and body["total"] == 3
    entries = api(tenant_a).get(f"/v1/batches/{body['id']}/entries?limit=2").json()
    assert entries["count"] == 3 and len(entries["items"]) == 2
    first = entries["items"][0]
    assert (first["index"], first["to"], first["end_user"], first["time_zone"]) == (
        0,
        CALLEES[0],
        "patient-0",
        "America/New_York",
    )
    assert (first["status"], first["attempts"], first["metadata"]) == ("pending", 0, {"row": 0})


def test_an_entrys_own_time_zone_wins_and_the_tenants_is_the_default(
    tenant_a: TenantWorld, batch_line: Line
) -> None:
    body = batch_body(batch_line, time_zone="")
    body["entries"][1]["time_zone"] = "Asia/Tokyo"
    created = create(tenant_a, body).json()

    assert created["time_zone"] == tenant_a.tenant.time_zone
    zones = list(BatchEntry.objects.order_by("position").values_list("time_zone", flat=True))
    assert zones == [tenant_a.tenant.time_zone, "Asia/Tokyo", tenant_a.tenant.time_zone]


def test_every_fault_is_named_by_field_and_row_and_nothing_is_stored(
    tenant_a: TenantWorld, batch_line: Line
) -> None:
    body = batch_body(
        batch_line,
        numbers=["+14155550171", "555-0172", "+14155550171"],
        concurrency=0,
        max_attempts=9,
        window={"start": "09:00", "end": "09:00"},
        time_zone="Mars/Olympus",
    )
    body["entries"][0]["time_zone"] = "Nowhere/Town"
    body["entries"][0]["metadata"] = {"note": "x" * 5000}

    response = create(tenant_a, body)

    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert set(fields) == {
        "concurrency",
        "max_attempts",
        "window.end",
        "time_zone",
        "entries[0].time_zone",
        "entries[0].metadata",
        "entries[1].to",
        "entries[2].to",
    }
    assert "already in the list" in fields["entries[2].to"][0]
    assert "E.164" in fields["entries[1].to"][0]
    assert not CallBatch.objects.exists() and not BatchEntry.objects.exists()


def test_a_batch_needs_entries_and_a_zoned_start(tenant_a: TenantWorld, batch_line: Line) -> None:
    response = create(tenant_a, batch_body(batch_line, entries=[], starts_at="2026-03-02T09:00"))

    assert set(response.json()["error"]["fields"]) == {"entries", "starts_at"}


def test_another_tenants_agent_and_number_are_field_errors(
    tenant_a: TenantWorld, tenant_b: TenantWorld, batch_line: Line
) -> None:
    response = create(tenant_b, batch_body(batch_line))

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"agent", "from"}
    assert not CallBatch.objects.exists()


def test_another_tenants_batch_is_not_found_anywhere(
    tenant_a: TenantWorld, tenant_b: TenantWorld, batch_line: Line
) -> None:
    batch_id = create(tenant_a, batch_body(batch_line)).json()["id"]
    foreign = api(tenant_b)

    assert foreign.get("/v1/batches").json()["count"] == 0
    assert foreign.get(f"/v1/batches/{batch_id}").status_code == 404
    assert foreign.get(f"/v1/batches/{batch_id}/entries").status_code == 404
    for action in ("pause", "resume", "cancel"):
        assert foreign.post(f"/v1/batches/{batch_id}/{action}").status_code == 404
    assert CallBatch.objects.get().status == "scheduled"


def test_pause_resume_and_cancel(tenant_a: TenantWorld, batch_line: Line) -> None:
    # Far in the future: resuming kicks the dispatcher, which must have nothing to call.
    later = batch_body(batch_line, starts_at="2099-01-01T09:00:00Z")
    batch_id = create(tenant_a, later).json()["id"]
    client = api(tenant_a)

    assert client.post(f"/v1/batches/{batch_id}/pause").json()["status"] == "paused"
    assert client.post(f"/v1/batches/{batch_id}/pause").json()["status"] == "paused"
    assert client.post(f"/v1/batches/{batch_id}/resume").json()["status"] == "scheduled"
    cancelled = client.post(f"/v1/batches/{batch_id}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["counts"]["cancelled"] == 3
    assert cancelled["completed_at"] is not None

    refused = client.post(f"/v1/batches/{batch_id}/resume")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "invalid_batch_state"


def test_creating_a_batch_starts_its_calls_at_once(
    tenant_a: TenantWorld,
    batch_line: Line,
    carrier: FakeTwilioRest,
    django_capture_on_commit_callbacks: Any,
    settings: Any,
) -> None:
    settings.CELERY_TASK_ALWAYS_EAGER = True  # as on the embedded default, also under REDIS_URL
    with (
        time_machine.travel(NEW_YORK_MORNING, tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = create(tenant_a, batch_body(batch_line))

    assert sorted(request.form["To"] for request in carrier.requests) == CALLEES[:2]
    batch = api(tenant_a).get(f"/v1/batches/{response.json()['id']}").json()
    assert batch["status"] == "running"
    assert (batch["counts"]["calling"], batch["counts"]["pending"]) == (2, 1)
    calling = api(tenant_a).get(f"/v1/batches/{batch['id']}/entries?status=calling").json()
    assert all(entry["phone_call"].startswith("pc_") for entry in calling["items"])


def test_erasing_an_end_user_removes_them_from_batches_so_they_are_not_called(
    tenant_a: TenantWorld, batch_line: Line
) -> None:
    from agents.telephony.models import BatchEntry

    far = {"starts_at": "2126-01-01T09:00:00-05:00"}  # nobody is called during the test
    created = create(tenant_a, batch_body(batch_line, **far))
    assert created.status_code == 201, created.content
    erased = api(tenant_a).post(f"/v1/end_users/{CALLEES[0]}/erasure")
    assert erased.status_code == 200, erased.content
    remaining = set(BatchEntry.objects.values_list("to", flat=True))
    assert CALLEES[0] not in remaining and remaining == set(CALLEES[1:])
    # By the tenant's own reference too.
    api(tenant_a).post("/v1/end_users/patient-1/erasure")
    assert set(BatchEntry.objects.values_list("to", flat=True)) == set(CALLEES[2:])
