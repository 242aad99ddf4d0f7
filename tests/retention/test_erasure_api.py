"""POST /v1/end_users/{end_user_ref}/erasure: the right to erasure over the REST API."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.forms.models import model_to_dict
from django.test import Client

from calls.models import ConsentScope
from events.models import OutboundEvent
from retention.models import PurgeLog
from tests.api import api_client
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.retention.conftest import StoredCall, stored_call

pytestmark = pytest.mark.django_db(transaction=True)

REF = "cust-42"


def erasure_url(ref: str) -> str:
    return f"/v1/end_users/{quote(ref, safe='')}/erasure"


def erase(world: TenantWorld, ref: str) -> Any:
    return api_client(world.secret).post(erasure_url(ref))


def event(world: TenantWorld, **payload: Any) -> OutboundEvent:
    return OutboundEvent.objects.create(
        tenant=world.tenant, type="call.ended", payload=payload, status="delivered"
    )


@pytest.fixture
def calls(tenant_a: TenantWorld, tenant_b: TenantWorld, media: Path) -> dict[str, StoredCall]:
    agent = AgentFactory(tenant=tenant_a.tenant)
    return {
        "recorded": stored_call(agent, ended_days_ago=3, end_user_ref=REF),
        "transcribed": stored_call(
            agent, ended_days_ago=1, end_user_ref=REF, consent=ConsentScope.TRANSCRIPT
        ),
        "no_consent": stored_call(
            agent, ended_days_ago=1, end_user_ref=REF, consent=ConsentScope.NONE
        ),
        "held": stored_call(agent, ended_days_ago=2, end_user_ref=REF, legal_hold=True),
        "live": stored_call(agent, live=True, end_user_ref=REF),
        "someone_else": stored_call(agent, ended_days_ago=3, end_user_ref="cust-7"),
        # The same reference in another tenant is another person.
        "other_tenant": stored_call(
            AgentFactory(tenant=tenant_b.tenant), ended_days_ago=3, end_user_ref=REF
        ),
    }


def test_erasure_deletes_the_end_users_content_and_reports_counts(
    calls: dict[str, StoredCall], tenant_a: TenantWorld, tenant_b: TenantWorld, media: Path
) -> None:
    about_recorded = event(tenant_a, call_id=calls["recorded"].call.public_id, end_user_ref=REF)
    transfer = event(
        tenant_a, call_id=calls["transcribed"].call.public_id, reason="wants a window seat"
    )
    about_held = event(tenant_a, call_id=calls["held"].call.public_id, end_user_ref=REF)
    about_other = event(tenant_a, call_id=calls["someone_else"].call.public_id)
    other_tenant_event = event(tenant_b, call_id=calls["other_tenant"].call.public_id)

    response = erase(tenant_a, REF)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {
        "object": "end_user.erasure",
        "end_user_ref": REF,
        "erasure_id": body["erasure_id"],
        "calls": 3,
        "transcripts": 2,
        "transcript_items": 4,
        "tool_invocations": 2,
        "recordings": 1,
        "recording_files": 1,
        "events": 2,
        "exports": 0,
        "skipped": {"legal_hold": 1, "active": 1},
    }
    for name in ("recorded", "transcribed"):
        stored = calls[name]
        call = stored.refresh()
        assert stored.transcript_count() == 0
        assert call.transcript_text == "" and call.follow_up_reason == ""
        assert call.transcript_purged_at is not None
        assert stored.invocation().arguments is None and stored.invocation().result == ""
    assert not calls["recorded"].has_recording_row()
    assert not (media / calls["recorded"].file_name).exists()
    assert calls["no_consent"].refresh().transcript_purged_at is None
    # Kept: the held call, the live one, another end user's, another tenant's.
    for name in ("held", "live", "someone_else", "other_tenant"):
        stored = calls[name]
        assert stored.transcript_count() == 2
        assert stored.has_recording_row()
        assert (media / stored.file_name).exists()
    remaining = set(OutboundEvent.objects.values_list("pk", flat=True))
    assert remaining == {about_held.pk, about_other.pk, other_tenant_event.pk}
    assert {about_recorded.pk, transfer.pk}.isdisjoint(remaining)

    log = PurgeLog.objects.get(public_id=body["erasure_id"])
    assert (log.tenant_id, log.trigger, log.recordings, log.held_calls) == (
        tenant_a.tenant.pk,
        "erasure",
        1,
        1,
    )
    # Counts only: the log keeps nothing that names the person.
    assert REF not in repr(model_to_dict(log))


def test_a_repeated_erasure_erases_nothing_more(
    calls: dict[str, StoredCall], tenant_a: TenantWorld
) -> None:
    erase(tenant_a, REF)

    body = erase(tenant_a, REF).json()

    # The erased calls no longer carry the reference; the held and live ones still do.
    assert body["calls"] == 0
    assert body["skipped"] == {"legal_hold": 1, "active": 1}
    counted = ("transcripts", "transcript_items", "tool_invocations", "recordings", "events")
    assert [body[name] for name in counted] == [0] * len(counted)
    assert PurgeLog.objects.filter(tenant=tenant_a.tenant, trigger="erasure").count() == 2


def test_an_unknown_end_user_erases_nothing(tenant_a: TenantWorld, media: Path) -> None:
    response = erase(tenant_a, "nobody")

    assert response.status_code == 200
    assert response.json()["calls"] == 0


def test_a_reference_with_a_slash_is_erased(tenant_a: TenantWorld, media: Path) -> None:
    stored = stored_call(
        AgentFactory(tenant=tenant_a.tenant), ended_days_ago=1, end_user_ref="crm/contacts/9"
    )

    response = erase(tenant_a, "crm/contacts/9")

    assert response.status_code == 200, response.content
    assert response.json()["recordings"] == 1
    assert not stored.has_recording_row()


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("x" * 201, "longer than 200 characters"),
        ("   ", "empty"),
        ("cust\x0142", "control characters"),
        ("cust\x0042", "control characters"),
    ],
)
def test_a_bad_reference_is_a_400_with_the_field(
    tenant_a: TenantWorld, ref: str, message: str
) -> None:
    response = erase(tenant_a, ref)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_fields"
    assert message in error["fields"]["end_user_ref"][0]
    assert not PurgeLog.objects.exists()


def test_erasure_needs_a_secret_key(db: None) -> None:
    response = Client().post(erasure_url(REF))

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_only_post_is_allowed(tenant_a: TenantWorld) -> None:
    response = api_client(tenant_a.secret).get(erasure_url(REF))

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
