"""Call exports do not outlive erasure or retention, and erasure forgets the end user's
reference: through the REST erasure endpoint and the purge task, with exports made on the
dashboard.

Transactional tests: export files are deleted once the removal commits.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.core.management import call_command
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from agents.models import Agent
from audit.models import AccessLog, CallExport, ExportedCall, ExportStatus
from calls.models import CallSession, Channel, ConsentScope, SessionToken
from retention import removal
from retention.models import PurgeLog, RetentionPolicy
from retention.tasks import purge_expired
from tenancy.roles import Role
from tests.api import api_client
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.retention.conftest import stored_call

pytestmark = pytest.mark.django_db(transaction=True)

REF = "cust-42"


@pytest.fixture(autouse=True)
def _exports_run_in_process(settings: Any) -> None:
    """The export task runs in the request that queues it (also where REDIS_URL is set)."""
    settings.CELERY_TASK_ALWAYS_EAGER = True


def erase(world: TenantWorld, ref: str = REF) -> Any:
    response = api_client(world.secret).post(f"/v1/end_users/{quote(ref, safe='')}/erasure")
    assert response.status_code == 200, response.content
    return response.json()


def export_of(client: Client, **data: str) -> CallExport:
    """Export from the dashboard (one ``call``, or the call list's ``query``); it is written
    before this returns."""
    before = set(CallExport.objects.values_list("pk", flat=True))
    response = client.post(reverse("dashboard:export_create"), {"format": "json", **data})
    assert response.status_code == 302
    export = CallExport.objects.exclude(pk__in=before).get()
    assert export.status == ExportStatus.DONE and export.file
    return export


def export_of_agent(client: Client, agent: Agent) -> CallExport:
    return export_of(client, query=urlencode({"agent": agent.public_id}))


def assert_removed(export: CallExport, media: Path, reason: str) -> None:
    name = export.file.name
    export.refresh_from_db()
    assert export.removed_at is not None
    assert export.removed_reason == reason
    assert export.file.name == ""
    assert not (media / name).exists()


def assert_kept(export: CallExport, media: Path) -> None:
    name = export.file.name
    export.refresh_from_db()
    assert export.removed_at is None and export.removed_reason == ""
    assert export.file.name == name and (media / name).exists()


@pytest.fixture
def agents(tenant_a: TenantWorld) -> dict[str, Agent]:
    return {
        "desk": AgentFactory(tenant=tenant_a.tenant),
        "sales": AgentFactory(tenant=tenant_a.tenant),
    }


def test_erasure_removes_the_exports_holding_the_end_users_calls_and_no_others(
    tenant_a: TenantWorld, tenant_b: TenantWorld, agents: dict[str, Agent], media: Path
) -> None:
    theirs = stored_call(agents["desk"], ended_days_ago=2, end_user_ref=REF)
    stored_call(agents["desk"], ended_days_ago=3, end_user_ref="cust-7")
    someone_else = stored_call(agents["sales"], ended_days_ago=3, end_user_ref="cust-7")
    other_tenant = stored_call(
        AgentFactory(tenant=tenant_b.tenant), ended_days_ago=3, end_user_ref=REF
    )
    client = tenant_a.client_for(Role.AUDITOR)
    single = export_of(client, call=theirs.call.public_id)
    # A filtered export holds the person's call among others': it goes too.
    filtered = export_of_agent(client, agents["desk"])
    unrelated = export_of(client, call=someone_else.call.public_id)
    unrelated_set = export_of_agent(client, agents["sales"])
    foreign = export_of(tenant_b.client_for(Role.AUDITOR), call=other_tenant.call.public_id)

    body = erase(tenant_a)

    assert body["exports"] == 2
    assert PurgeLog.objects.get(public_id=body["erasure_id"]).exports == 2
    for export in (single, filtered):
        assert_removed(export, media, "erasure")
    for export in (unrelated, unrelated_set, foreign):
        assert_kept(export, media)


def test_erasure_removes_an_export_of_a_call_without_transcript_consent(
    tenant_a: TenantWorld, agents: dict[str, Agent], media: Path
) -> None:
    """The export names the person (its end_user_ref) even where it holds no words."""
    silent = stored_call(
        agents["desk"], ended_days_ago=1, end_user_ref=REF, consent=ConsentScope.NONE
    )
    export = export_of(tenant_a.client_for(Role.OWNER), call=silent.call.public_id)

    assert erase(tenant_a)["exports"] == 1

    assert_removed(export, media, "erasure")


def test_an_export_of_a_held_call_stays_with_the_call(
    tenant_a: TenantWorld, agents: dict[str, Agent], media: Path
) -> None:
    held = stored_call(agents["desk"], ended_days_ago=1, end_user_ref=REF, legal_hold=True)
    export = export_of(tenant_a.client_for(Role.OWNER), call=held.call.public_id)

    body = erase(tenant_a)

    assert (body["exports"], body["skipped"]["legal_hold"]) == (0, 1)
    assert_kept(export, media)


def test_erasure_clears_the_reference_from_the_calls_and_their_tokens(
    tenant_a: TenantWorld, agents: dict[str, Agent], media: Path
) -> None:
    erased = stored_call(agents["desk"], ended_days_ago=1, end_user_ref=REF)
    silent = stored_call(
        agents["desk"], ended_days_ago=1, end_user_ref=REF, consent=ConsentScope.NONE
    )
    held = stored_call(agents["desk"], ended_days_ago=1, end_user_ref=REF, legal_hold=True)
    live = stored_call(agents["desk"], live=True, end_user_ref=REF)
    now = timezone.now()

    def token(**fields: Any) -> SessionToken:
        issued, _ = SessionToken.issue(
            tenant=tenant_a.tenant,
            agent=agents["desk"],
            channel=Channel.WIDGET,
            end_user_ref=REF,
            ttl=timedelta(minutes=5),
        )
        SessionToken.objects.filter(pk=issued.pk).update(**fields)
        return issued

    used = token(used_at=now - timedelta(days=1))
    expired = token(expires_at=now - timedelta(minutes=1))
    # Not yet used: the call it opens is the person's new call, for a later request.
    waiting = token()
    logs_before = list(AccessLog.objects.values_list("pk", flat=True))

    body = erase(tenant_a)

    assert body["calls"] == 2
    assert erased.refresh().end_user_ref == "" and silent.refresh().end_user_ref == ""
    # Kept calls keep the reference, so that a request after the hold or the call can erase.
    assert held.refresh().end_user_ref == REF and live.refresh().end_user_ref == REF
    tokens = dict(SessionToken.objects.values_list("pk", "end_user_ref"))
    assert tokens == {used.pk: "", expired.pk: "", waiting.pk: REF}
    # Erasure writes the reference nowhere: no access log row, a log of counts only.
    assert list(AccessLog.objects.values_list("pk", flat=True)) == logs_before
    assert REF not in repr(model_to_dict(PurgeLog.objects.get(public_id=body["erasure_id"])))

    CallSession.objects.filter(pk=held.call.pk).update(legal_hold=False)
    again = erase(tenant_a)
    assert (again["calls"], again["transcripts"]) == (1, 1)
    assert held.refresh().end_user_ref == ""


def test_the_purge_removes_exports_holding_a_transcript_past_its_days(
    tenant_a: TenantWorld, agents: dict[str, Agent], media: Path
) -> None:
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, transcript_days=30)
    old = stored_call(agents["desk"], ended_days_ago=40)
    recent = stored_call(agents["sales"], ended_days_ago=5)
    client = tenant_a.client_for(Role.AUDITOR)
    of_old = export_of(client, call=old.call.public_id)
    of_desk = export_of_agent(client, agents["desk"])
    of_recent = export_of(client, call=recent.call.public_id)

    result = purge_expired.apply().get()

    assert (result["transcripts"], result["exports"]) == (1, 2)
    assert PurgeLog.objects.get(tenant=tenant_a.tenant).exports == 2
    for export in (of_old, of_desk):
        assert_removed(export, media, "retention")
    assert_kept(of_recent, media)
    assert purge_expired.apply().get()["exports"] == 0


def test_a_recording_purge_leaves_exports_which_hold_no_audio(
    tenant_a: TenantWorld, agents: dict[str, Agent], media: Path
) -> None:
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, recording_days=30)
    old = stored_call(agents["desk"], ended_days_ago=40)
    export = export_of(tenant_a.client_for(Role.AUDITOR), call=old.call.public_id)

    result = purge_expired.apply().get()

    assert (result["recordings"], result["exports"]) == (1, 0)
    assert_kept(export, media)


def test_a_dry_run_counts_each_export_once_and_removes_none(
    tenant_a: TenantWorld, agents: dict[str, Agent], media: Path, capsys: Any
) -> None:
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, transcript_days=30)
    for _ in range(2):
        stored_call(agents["desk"], ended_days_ago=40)
    export = export_of_agent(tenant_a.client_for(Role.AUDITOR), agents["desk"])

    call_command("purge_expired", "--dry-run")

    assert "would remove 2 transcripts" in capsys.readouterr().out
    assert PurgeLog.objects.get(tenant=tenant_a.tenant, dry_run=True).exports == 1
    assert_kept(export, media)


def test_an_expired_export_without_a_file_is_left_as_expired(
    tenant_a: TenantWorld, agents: dict[str, Agent], media: Path
) -> None:
    theirs = stored_call(agents["desk"], ended_days_ago=1, end_user_ref=REF)
    export = export_of(tenant_a.client_for(Role.AUDITOR), call=theirs.call.public_id)
    CallExport.objects.filter(pk=export.pk).update(file="")

    assert erase(tenant_a)["exports"] == 0

    export.refresh_from_db()
    assert export.removed_at is None


def test_an_export_that_records_a_call_while_its_transcript_goes_is_still_removed(
    tenant_a: TenantWorld, agents: dict[str, Agent], media: Path, monkeypatch: Any
) -> None:
    """An export task records a chunk's calls, then reads them. If it records them after the
    purge's own look-up (inside its transaction), its read may still have seen the words
    before the purge committed: the look-up after the commit must find it."""
    RetentionPolicy.objects.create(tenant=tenant_a.tenant, transcript_days=30)
    old = stored_call(agents["desk"], ended_days_ago=40)
    running = CallExport.objects.create(
        tenant=tenant_a.tenant,
        requested_by_name="owner",
        params={"filters": {}},
        format="json",
        status=ExportStatus.RUNNING,
        expires_at=timezone.now() + timedelta(days=7),
    )
    real = removal.remove_exports_holding
    look_ups: list[int] = []

    def racing(call_ids: list[int], *args: Any, **kwargs: Any) -> int:
        removed = real(call_ids, *args, **kwargs)
        if not look_ups:  # just after the look-up inside the transaction
            ExportedCall.objects.create(export=running, call=old.call)
        look_ups.append(removed)
        return removed

    monkeypatch.setattr(removal, "remove_exports_holding", racing)

    assert purge_expired.apply().get()["exports"] == 1

    assert look_ups == [0, 1]
    running.refresh_from_db()
    assert running.removed_reason == "retention"
