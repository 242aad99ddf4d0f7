"""The isolation matrix for every dashboard URL that takes an object id.

Each role of tenant A against tenant B's object gets 404; each role inside tenant B gets
what its role allows, and 403 (with no change in the database) where it does not. The
URL table is checked against dashboard/urls.py, so a new page with an id cannot be added
without joining the matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Any

import pytest
from django.apps import apps
from django.urls import URLPattern, get_resolver, reverse
from django.utils import timezone

from agents.models import WidgetKey
from agents.telephony.models import BatchEntry, CallBatch, CarrierAccount, PhoneNumber
from audit.models import CallExport
from calls.models import CallSession
from dashboard import urls as dashboard_urls
from events.models import OutboundEvent
from tenancy.models import Invitation
from tenancy.roles import Permission, Role, role_allows
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, CredentialFactory, ToolFactory
from tools.actions import ensure_builtin_tools


@dataclass
class Objects:
    world: TenantWorld
    agent_id: str
    tool_id: str
    credential_id: str
    key_id: str
    widget_key: str
    membership_id: int
    invitation_id: int
    call_id: str
    event_id: str
    export_id: str
    account_id: str
    number_id: str
    batch_id: str


def _objects(world: TenantWorld) -> Objects:
    # The tool list and the agent form create any missing built-in: have them all already,
    # so that showing those pages changes nothing.
    ensure_builtin_tools(world.tenant)
    tool = ToolFactory(tenant=world.tenant)
    agent = AgentFactory(tenant=world.tenant, tools=[tool])
    widget_key = WidgetKey.objects.create(agent=agent, allowed_origins=["https://shop.example"])
    invitation, _ = Invitation.issue(tenant=world.tenant, email="new@example.com", role=Role.EDITOR)
    call = CallSession.objects.create(
        tenant=world.tenant,
        agent=agent,
        agent_version=agent.current_version,
        agent_name=agent.name,
        version_number=1,
        channel="api",
        provider="local",
        model="koe-local",
        status="ended",
    )
    # No events endpoint: the settings' event actions then change nothing, as the page
    # checks below expect of an empty POST.
    event = OutboundEvent.objects.create(
        tenant=world.tenant, type="call.ended", payload={"call_id": call.public_id}
    )
    export = CallExport.objects.create(
        tenant=world.tenant,
        requested_by_name="auditor@example.com",
        params={"call": call.public_id},
        format="json",
        expires_at=timezone.now() + timedelta(days=7),
    )
    account = CarrierAccount.objects.create(
        tenant=world.tenant, name="Main", account_sid="AC" + "0" * 32, auth_token="token-1234"
    )
    # Tenants' numbers differ: a number is unique across Koe.
    number = PhoneNumber.objects.create(
        tenant=world.tenant,
        number=f"+1415555{world.tenant.pk:04d}",
        carrier_account=account,
        agent=agent,
    )
    # Not due for a century: resuming it (which kicks the dispatcher) calls no one.
    batch = CallBatch.objects.create(
        tenant=world.tenant,
        agent=agent,
        phone_number=number,
        name="Recalls",
        window_start=time(9),
        window_end=time(18),
        time_zone="UTC",
        starts_at=timezone.now() + timedelta(days=36500),
    )
    BatchEntry.objects.create(batch=batch, position=0, to="+14155550171", time_zone="UTC")
    assert world.api_key is not None
    return Objects(
        world=world,
        agent_id=agent.public_id,
        tool_id=tool.public_id,
        credential_id=CredentialFactory(tenant=world.tenant).public_id,
        key_id=world.api_key.public_id,
        widget_key=widget_key.key,
        membership_id=world.members[Role.EDITOR].pk,
        invitation_id=invitation.pk,
        call_id=call.public_id,
        event_id=event.public_id,
        export_id=export.public_id,
        account_id=account.public_id,
        number_id=number.public_id,
        batch_id=batch.public_id,
    )


Kwargs = Callable[[Objects], dict[str, Any]]


@dataclass(frozen=True)
class Endpoint:
    name: str
    kwargs: Kwargs
    method: str
    permission: Permission
    data: dict[str, Any] | None = None
    json: bool = False  # the body is JSON (the endpoint answers JSON)

    def __str__(self) -> str:
        return f"{self.method} {self.name}"


def agent(o: Objects) -> dict[str, Any]:
    return {"agent_id": o.agent_id}


ENDPOINTS = [
    Endpoint("agent_detail", agent, "GET", Permission.VIEW),
    Endpoint("agent_edit", agent, "GET", Permission.EDIT),
    Endpoint("agent_edit", agent, "POST", Permission.EDIT, {"name": ""}),
    Endpoint("agent_duplicate", agent, "POST", Permission.EDIT),
    Endpoint("agent_delete", agent, "GET", Permission.EDIT),
    Endpoint("agent_delete", agent, "POST", Permission.EDIT),
    Endpoint("agent_console", agent, "GET", Permission.EDIT),
    Endpoint("agent_console_token", agent, "POST", Permission.EDIT, json=True),
    Endpoint("retention_agent", agent, "GET", Permission.MANAGE),
    Endpoint("retention_agent", agent, "POST", Permission.MANAGE, {"recording_days": "-1"}),
    Endpoint(
        "agent_version", lambda o: {"agent_id": o.agent_id, "number": 1}, "GET", Permission.VIEW
    ),
    Endpoint(
        "widget_key_create",
        agent,
        "POST",
        Permission.EDIT,
        {"allowed_origins": "https://other.example"},
    ),
    Endpoint(
        "widget_key_revoke",
        lambda o: {"agent_id": o.agent_id, "key": o.widget_key},
        "POST",
        Permission.EDIT,
    ),
    Endpoint("tool_edit", lambda o: {"tool_id": o.tool_id}, "GET", Permission.VIEW),
    Endpoint(
        "tool_edit", lambda o: {"tool_id": o.tool_id}, "POST", Permission.EDIT, {"name": "x y"}
    ),
    Endpoint("tool_duplicate", lambda o: {"tool_id": o.tool_id}, "POST", Permission.EDIT),
    Endpoint("tool_delete", lambda o: {"tool_id": o.tool_id}, "GET", Permission.EDIT),
    Endpoint("tool_delete", lambda o: {"tool_id": o.tool_id}, "POST", Permission.EDIT),
    Endpoint("tool_rotate_secret", lambda o: {"tool_id": o.tool_id}, "POST", Permission.EDIT),
    Endpoint("tool_test", lambda o: {"tool_id": o.tool_id}, "GET", Permission.EDIT),
    # Without arguments nothing runs (a form error), so the matrix makes no request out.
    Endpoint("tool_test", lambda o: {"tool_id": o.tool_id}, "POST", Permission.EDIT),
    Endpoint(
        "credential_edit", lambda o: {"credential_id": o.credential_id}, "GET", Permission.MANAGE
    ),
    Endpoint(
        "credential_edit",
        lambda o: {"credential_id": o.credential_id},
        "POST",
        Permission.MANAGE,
        {"name": ""},
    ),
    Endpoint(
        "credential_delete", lambda o: {"credential_id": o.credential_id}, "GET", Permission.MANAGE
    ),
    Endpoint(
        "credential_delete", lambda o: {"credential_id": o.credential_id}, "POST", Permission.MANAGE
    ),
    Endpoint("phone_number_edit", lambda o: {"number_id": o.number_id}, "GET", Permission.EDIT),
    Endpoint(
        "phone_number_edit",
        lambda o: {"number_id": o.number_id},
        "POST",
        Permission.EDIT,
        {"label": "x"},
    ),
    Endpoint("phone_number_delete", lambda o: {"number_id": o.number_id}, "GET", Permission.EDIT),
    Endpoint("phone_number_delete", lambda o: {"number_id": o.number_id}, "POST", Permission.EDIT),
    Endpoint(
        "carrier_account_edit", lambda o: {"account_id": o.account_id}, "GET", Permission.MANAGE
    ),
    Endpoint(
        "carrier_account_edit",
        lambda o: {"account_id": o.account_id},
        "POST",
        Permission.MANAGE,
        {"name": ""},
    ),
    Endpoint(
        "carrier_account_delete", lambda o: {"account_id": o.account_id}, "GET", Permission.MANAGE
    ),
    # Its number still uses the account: the page says so, and nothing is deleted.
    Endpoint(
        "carrier_account_delete", lambda o: {"account_id": o.account_id}, "POST", Permission.MANAGE
    ),
    Endpoint("api_key_revoke", lambda o: {"key_id": o.key_id}, "POST", Permission.MANAGE),
    Endpoint(
        "member_role",
        lambda o: {"membership_id": o.membership_id},
        "POST",
        Permission.MANAGE,
        {"role": "auditor"},
    ),
    Endpoint(
        "member_remove", lambda o: {"membership_id": o.membership_id}, "POST", Permission.MANAGE
    ),
    Endpoint(
        "invitation_revoke", lambda o: {"invitation_id": o.invitation_id}, "POST", Permission.MANAGE
    ),
    Endpoint("batch_detail", lambda o: {"batch_id": o.batch_id}, "GET", Permission.VIEW),
    Endpoint("batch_pause", lambda o: {"batch_id": o.batch_id}, "POST", Permission.EDIT),
    Endpoint("batch_resume", lambda o: {"batch_id": o.batch_id}, "POST", Permission.EDIT),
    Endpoint("batch_cancel", lambda o: {"batch_id": o.batch_id}, "POST", Permission.EDIT),
    Endpoint("call_detail", lambda o: {"call_id": o.call_id}, "GET", Permission.VIEW),
    Endpoint("call_end", lambda o: {"call_id": o.call_id}, "POST", Permission.EDIT),
    Endpoint(
        "call_hold", lambda o: {"call_id": o.call_id}, "POST", Permission.HOLD, {"hold": "on"}
    ),
    Endpoint("export_detail", lambda o: {"export_id": o.export_id}, "GET", Permission.EXPORT),
    # Without its signed link the download sends the member back to the export's page.
    Endpoint("export_download", lambda o: {"export_id": o.export_id}, "GET", Permission.EXPORT),
    Endpoint("event_detail", lambda o: {"event_id": o.event_id}, "GET", Permission.MANAGE),
    Endpoint(
        "tenant_switch", lambda o: {"tenant_id": o.world.tenant.public_id}, "POST", Permission.VIEW
    ),
]

# URLs with an id that are reached without a tenant membership, by design.
NOT_TENANT_SCOPED = {"invitation_accept", "password_reset_confirm"}
# Recordings are served only through links signed for one member, so the matrix cannot
# make their URLs; tests/recordings/test_playback.py checks them across roles and tenants.
SIGNED_PER_MEMBER = {"recording_play", "recording_download"}


def _database_state() -> dict[str, list[tuple[Any, ...]]]:
    state = {}
    for model in apps.get_models():
        if model._meta.app_label in {
            "tenancy",
            "agents",
            "tools",
            "calls",
            "events",
            "retention",
            "audit",
            "telephony",
        }:
            fields = [f.attname for f in model._meta.concrete_fields if f.attname != "last_used_at"]
            state[model._meta.label] = sorted(model._default_manager.values_list(*fields), key=repr)
    return state


def _request(client: Any, endpoint: Endpoint, objects: Objects) -> Any:
    url = reverse(f"dashboard:{endpoint.name}", kwargs=endpoint.kwargs(objects))
    if endpoint.method == "GET":
        return client.get(url)
    if endpoint.json:
        return client.post(url, endpoint.data or {}, content_type="application/json")
    return client.post(url, endpoint.data or {})


def test_every_dashboard_url_with_an_id_is_in_the_matrix() -> None:
    with_ids = {
        pattern.name
        for pattern in get_resolver(dashboard_urls).url_patterns
        if isinstance(pattern, URLPattern) and pattern.pattern.converters
    }
    covered = {endpoint.name for endpoint in ENDPOINTS}
    assert with_ids - NOT_TENANT_SCOPED - SIGNED_PER_MEMBER == covered


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
@pytest.mark.parametrize("role", Role.values)
def test_another_tenants_object_is_not_found(
    endpoint: Endpoint, role: str, tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    foreign = _objects(tenant_b)
    _objects(tenant_a)
    before = _database_state()

    response = _request(tenant_a.client_for(role), endpoint, foreign)

    assert response.status_code == 404
    assert _database_state() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
@pytest.mark.parametrize("role", Role.values)
def test_roles_inside_the_tenant(endpoint: Endpoint, role: str, tenant_a: TenantWorld) -> None:
    own = _objects(tenant_a)
    before = _database_state()

    response = _request(tenant_a.client_for(role), endpoint, own)

    if role_allows(role, endpoint.permission):
        assert response.status_code in {200, 204, 302}, response.content[:500]
    else:
        assert response.status_code == 403
        assert _database_state() == before


PAGES = [
    ("agent_list", "GET", Permission.VIEW),
    ("agent_create", "GET", Permission.EDIT),
    ("agent_create", "POST", Permission.EDIT),
    ("tool_list", "GET", Permission.VIEW),
    ("call_list", "GET", Permission.VIEW),
    ("batch_list", "GET", Permission.VIEW),
    ("batch_create", "GET", Permission.EDIT),
    ("batch_create", "POST", Permission.EDIT),
    ("usage", "GET", Permission.VIEW),
    ("usage_export", "GET", Permission.VIEW),
    ("tool_create", "GET", Permission.EDIT),
    ("tool_create", "POST", Permission.EDIT),
    ("member_list", "GET", Permission.MANAGE),
    ("member_invite", "POST", Permission.MANAGE),
    ("api_key_list", "GET", Permission.MANAGE),
    ("api_key_create", "POST", Permission.MANAGE),
    ("credential_list", "GET", Permission.MANAGE),
    ("carrier_account_list", "GET", Permission.MANAGE),
    ("carrier_account_create", "GET", Permission.MANAGE),
    ("carrier_account_create", "POST", Permission.MANAGE),
    ("phone_number_list", "GET", Permission.VIEW),
    ("phone_number_create", "GET", Permission.EDIT),
    ("phone_number_create", "POST", Permission.EDIT),
    ("credential_create", "GET", Permission.MANAGE),
    ("credential_create", "POST", Permission.MANAGE),
    ("tenant_settings", "GET", Permission.MANAGE),
    ("tenant_settings", "POST", Permission.MANAGE),
    ("tenant_budget", "POST", Permission.MANAGE),
    ("events_endpoint", "POST", Permission.MANAGE),
    ("events_rotate_secret", "POST", Permission.MANAGE),
    ("events_test", "POST", Permission.MANAGE),
    ("event_list", "GET", Permission.MANAGE),
    ("retention_settings", "GET", Permission.MANAGE),
    ("retention_settings", "POST", Permission.MANAGE),
    ("access_log", "GET", Permission.AUDIT_LOG),
    ("export_list", "GET", Permission.EXPORT),
    ("export_create", "POST", Permission.EXPORT),
]


@pytest.mark.parametrize(("name", "method", "permission"), PAGES, ids=lambda v: str(v))
@pytest.mark.parametrize("role", Role.values)
def test_pages_without_ids_follow_the_role(
    name: str, method: str, permission: Permission, role: str, tenant_a: TenantWorld
) -> None:
    _objects(tenant_a)
    before = _database_state()
    client = tenant_a.client_for(role)
    url = reverse(f"dashboard:{name}")

    # An empty POST is a form with errors for those allowed: nothing is created.
    response = client.get(url) if method == "GET" else client.post(url, {})

    if role_allows(role, permission):
        assert response.status_code in {200, 302}
    else:
        assert response.status_code == 403
    assert _database_state() == before
