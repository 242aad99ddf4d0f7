"""manage.py purge_expired: counts per tenant and kind, --dry-run, --tenant."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from retention.models import PurgeLog, RetentionPolicy
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.retention.conftest import StoredCall, stored_call

pytestmark = pytest.mark.django_db(transaction=True)


def purge(*args: str) -> str:
    out = io.StringIO()
    call_command("purge_expired", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def expired(tenant_a: TenantWorld, tenant_b: TenantWorld, media: Path) -> list[StoredCall]:
    calls = []
    for world in (tenant_a, tenant_b):
        RetentionPolicy.objects.create(tenant=world.tenant, recording_days=7, transcript_days=7)
        calls.append(stored_call(AgentFactory(tenant=world.tenant), ended_days_ago=30))
    return calls


def test_dry_run_prints_what_would_go_per_tenant_and_removes_nothing(
    expired: list[StoredCall], tenant_a: TenantWorld, media: Path
) -> None:
    output = purge("--dry-run")

    line = next(line for line in output.splitlines() if tenant_a.tenant.public_id in line)
    assert "would remove 1 transcripts, 2 transcript items, 1 tool invocations" in line
    assert "1 recordings, 1 recording files" in line
    assert "2 tenant(s): would remove 2 transcripts" in output
    assert all(stored.has_recording_row() for stored in expired)
    assert all((media / stored.file_name).exists() for stored in expired)
    assert PurgeLog.objects.filter(trigger="command", dry_run=True).count() == 2


def test_purge_of_one_tenant_leaves_the_others(
    expired: list[StoredCall], tenant_a: TenantWorld, tenant_b: TenantWorld, media: Path
) -> None:
    output = purge("--tenant", tenant_a.tenant.public_id)

    assert f"Acme Dental ({tenant_a.tenant.public_id}): removed 1 transcripts" in output
    assert tenant_b.tenant.public_id not in output
    a_call, b_call = expired
    assert not a_call.has_recording_row() and not (media / a_call.file_name).exists()
    assert b_call.has_recording_row() and (media / b_call.file_name).exists()
    log = PurgeLog.objects.get(tenant=tenant_a.tenant)
    assert (log.trigger, log.dry_run, log.recordings) == ("command", False, 1)


def test_an_unknown_tenant_is_a_clear_error(db: None) -> None:
    with pytest.raises(CommandError, match="No tenant has the public id 'ten_nope'"):
        purge("--tenant", "ten_nope")
