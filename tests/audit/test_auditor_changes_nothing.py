"""An auditor reads and exports, and changes nothing: every dashboard URL is POSTed to.

The URLs come from the resolver, so a page added later is walked without anyone listing
it; a POST an auditor legitimately makes is named in AUDITOR_MAY_POST with the reason,
and what each of those may change is checked on its own below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time, timedelta
from typing import Any

import pytest
from django.apps import apps
from django.test import Client
from django.urls import URLPattern, get_resolver, reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from agents.models import WidgetKey
from agents.telephony.models import BatchEntry, CallBatch, CarrierAccount, PhoneNumber
from audit.models import AccessAction, AccessLog, CallExport, ExportedCall
from calls.models import CallSession
from dashboard import urls as dashboard_urls
from events.models import OutboundEvent
from tenancy.models import Invitation
from tenancy.roles import Role
from tests.audit.conftest import add_conversation, ended_call
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, CredentialFactory, ToolFactory
from tools.actions import ensure_builtin_tools

# The POSTs an auditor may make, and why. Anything else must answer 403 (404 for another
# tenant's id) or 405 (a page that takes no POST), and leave the database as it was.
AUDITOR_MAY_POST = {
    "logout": "ends their own session",
    "login": "an account page: a logged-in person is sent on",
    "signup": "an account page: a logged-in person is sent on",
    "tenant_create": "anyone may found a tenant of their own; it does not touch this one",
    "tenant_switch": "chooses which of their own tenants to look at (the session only)",
    "invitation_accept": "accepts an invitation sent to them; it is not a tenant action",
    "export_create": "exporting is the auditor's job (it writes the export and its log row)",
    "call_hold": "legal hold, only where the tenant lets auditors set it",
    # Their own account's security, whatever their role (checked below).
    "login_code": "the second step of their own log-in",
    "password_reset": "asks for a reset link by e-mail, answering alike for any address",
    "password_reset_confirm": "sets a new password through an e-mailed link",
    "password_change": "changes their own password (given the old one)",
    "two_factor_setup": "sets up their own two-factor log-in",
    "two_factor_turn_off": "turns off their own two-factor log-in (given the password)",
    "backup_codes_renew": "replaces their own two-factor backup codes",
}
# Pages that only read and answer a POST as they answer a GET (they do not restrict the
# method). Listed by hand: a new page answering an auditor's POST with anything but 403 or
# 405 fails below until someone decides it is one of these.
READ_ONLY_PAGES = {
    "home",
    "agent_list",
    "agent_detail",
    "agent_version",
    "agent_console",
    "call_list",
    "usage",
    "usage_export",
    "tool_list",
}
# URLs with an id that are reached without a tenant membership, by design.
NOT_TENANT_SCOPED = {"invitation_accept"}
# Rows that a request changes whatever its role: the session of the logged-in person.
NOT_COMPARED = {"sessions.Session"}

# Form data that would be a valid change on most pages, so that a view forgetting its
# permission check changes something and fails loudly rather than answering a form error.
POST_DATA = {
    "name": "Changed by the auditor",
    "role": Role.OWNER,
    "email": "intruder@example.com",
    "hold": "on",
    "format": "json",
    "allowed_origins": "https://intruder.example",
    "instructions": "Reveal everything.",
    "time_zone": "UTC",
    "max_concurrent_calls": "5",
    "events_url": "https://intruder.example/hook",
}


@dataclass
class Objects:
    """One object of each kind a dashboard URL names, keyed by the URL's argument name."""

    kwargs: dict[str, Any]


def make_objects(world: TenantWorld) -> Objects:
    ensure_builtin_tools(world.tenant)
    tool = ToolFactory(tenant=world.tenant)
    agent = AgentFactory(tenant=world.tenant, tools=[tool])
    widget_key = WidgetKey.objects.create(agent=agent, allowed_origins=["https://shop.example"])
    invitation, token = Invitation.issue(
        tenant=world.tenant, email="new@example.com", role=Role.EDITOR
    )
    call = ended_call(world.tenant, agent=agent)
    add_conversation(call)
    event = OutboundEvent.objects.create(
        tenant=world.tenant, type="call.ended", payload={"call_id": call.public_id}
    )
    export = CallExport.objects.create(
        tenant=world.tenant,
        requested_by=world.members[Role.OWNER].user,
        requested_by_name="owner",
        params={"call": call.public_id},
        format="json",
        expires_at=timezone.now() + timedelta(days=1),
    )
    account = CarrierAccount.objects.create(
        tenant=world.tenant, name="Main", account_sid="AC" + "0" * 32, auth_token="token-1234"
    )
    number = PhoneNumber.objects.create(
        tenant=world.tenant,
        number=f"+1415555{world.tenant.pk:04d}",
        carrier_account=account,
        agent=agent,
    )
    batch = CallBatch.objects.create(
        tenant=world.tenant,
        agent=agent,
        phone_number=number,
        name="Recalls",
        window_start=time(9),
        window_end=time(18),
        time_zone="UTC",
        starts_at=timezone.now() + timedelta(days=36500),  # calls no one if resumed
    )
    BatchEntry.objects.create(batch=batch, position=0, to="+14155550171", time_zone="UTC")
    assert world.api_key is not None
    return Objects(
        {
            "tenant_id": world.tenant.public_id,
            "agent_id": agent.public_id,
            "number": 1,
            "key": widget_key.key,
            "tool_id": tool.public_id,
            "credential_id": CredentialFactory(tenant=world.tenant).public_id,
            "key_id": world.api_key.public_id,
            "membership_id": world.members[Role.EDITOR].pk,
            "invitation_id": invitation.pk,
            "token": token,
            "call_id": call.public_id,
            "event_id": event.public_id,
            "export_id": export.public_id,
            "account_id": account.public_id,
            "number_id": number.public_id,
            "batch_id": batch.public_id,
        }
    )


def dashboard_patterns() -> list[URLPattern]:
    return [
        pattern
        for pattern in get_resolver(dashboard_urls).url_patterns
        if isinstance(pattern, URLPattern)
    ]


def url_of(pattern: URLPattern, objects: Objects) -> str:
    names = pattern.pattern.converters.keys()
    missing = set(names) - objects.kwargs.keys()
    assert not missing, f"make_objects() has no object for {pattern.name}'s {missing}"
    return reverse(
        f"dashboard:{pattern.name}", kwargs={name: objects.kwargs[name] for name in names}
    )


def database_state(*, skip: frozenset[str] = frozenset()) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every model (all columns), so any insert, update or delete shows."""
    state = {}
    for model in apps.get_models():
        label = model._meta.label
        if label in NOT_COMPARED or label in skip:
            continue
        fields = [field.attname for field in model._meta.concrete_fields]
        state[label] = sorted(model._default_manager.values_list(*fields), key=repr)
    return state


def auditor(world: TenantWorld) -> Client:
    """The auditor, logged in (before a test takes its snapshot: logging in sets last_login)."""
    return world.client_for(Role.AUDITOR)


WALKED = [p for p in dashboard_patterns() if p.name not in AUDITOR_MAY_POST]
WITH_IDS = [p for p in WALKED if p.pattern.converters and p.name not in NOT_TENANT_SCOPED]


def test_the_allowlist_names_only_urls_that_exist() -> None:
    names = {pattern.name for pattern in dashboard_patterns()}
    assert set(AUDITOR_MAY_POST) <= names
    assert len(WALKED) + len(AUDITOR_MAY_POST) == len(names)


@pytest.mark.parametrize("pattern", WALKED, ids=lambda pattern: pattern.name)
def test_an_auditors_post_is_refused_and_changes_nothing(
    pattern: URLPattern, tenant_a: TenantWorld
) -> None:
    objects = make_objects(tenant_a)
    client = auditor(tenant_a)
    before = database_state()

    response = client.post(url_of(pattern, objects), POST_DATA)

    if pattern.name in READ_ONLY_PAGES:
        assert response.status_code in {200, 302, 403, 405}, (pattern.name, response.status_code)
    else:
        assert response.status_code in {403, 405}, (pattern.name, response.status_code)
    assert database_state() == before


@pytest.mark.parametrize("pattern", WITH_IDS, ids=lambda pattern: pattern.name)
def test_an_auditors_post_to_another_tenants_object_is_not_found(
    pattern: URLPattern, tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    make_objects(tenant_a)
    foreign = make_objects(tenant_b)
    client = auditor(tenant_a)
    before = database_state()

    response = client.post(url_of(pattern, foreign), POST_DATA)

    assert response.status_code in {403, 404, 405}, (pattern.name, response.status_code)
    assert database_state() == before


# --- the allowed POSTs, each with what it may change ---------------------------------------


def test_logging_out_and_switching_tenant_change_only_the_session(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    objects = make_objects(tenant_a)
    client = auditor(tenant_a)
    before = database_state()

    switched = client.post(reverse("dashboard:tenant_switch", args=[objects.kwargs["tenant_id"]]))
    logged_out = client.post(reverse("dashboard:logout"))

    assert switched.status_code == 302 and logged_out.status_code == 302
    assert database_state() == before


@pytest.mark.parametrize("name", ["login", "signup", "tenant_create"])
def test_account_pages_posted_empty_change_nothing(name: str, tenant_a: TenantWorld) -> None:
    make_objects(tenant_a)
    client = auditor(tenant_a)
    before = database_state()

    response = client.post(reverse(f"dashboard:{name}"), {})

    assert response.status_code in {200, 302}
    assert database_state() == before


# An account's two-factor devices: the person's own, not the tenant's.
OWN_ACCOUNT_TABLES = frozenset(
    {"otp_totp.TOTPDevice", "otp_static.StaticDevice", "otp_static.StaticToken"}
)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("login_code", []),
        ("password_reset", []),
        ("password_reset_confirm", ["nope", "nope"]),
        ("password_change", []),
        ("two_factor_setup", []),
        ("two_factor_turn_off", []),
        ("backup_codes_renew", []),
    ],
)
def test_account_pages_change_only_the_persons_own_account(
    name: str, args: list[str], tenant_a: TenantWorld
) -> None:
    make_objects(tenant_a)
    client = auditor(tenant_a)
    before = database_state(skip=OWN_ACCOUNT_TABLES)

    response = client.post(reverse(f"dashboard:{name}", args=args), POST_DATA)

    assert response.status_code in {200, 302}
    assert database_state(skip=OWN_ACCOUNT_TABLES) == before
    owners = {device.user for device in TOTPDevice.objects.all()}
    assert owners <= {tenant_a.members[Role.AUDITOR].user}


def test_a_wrong_invitation_token_changes_nothing(tenant_a: TenantWorld) -> None:
    make_objects(tenant_a)
    client = auditor(tenant_a)
    before = database_state()

    response = client.post(reverse("dashboard:invitation_accept", args=["nope"]), {})

    assert response.status_code == 404
    assert database_state() == before


def test_an_export_writes_only_the_export_and_its_log_row(
    tenant_a: TenantWorld, django_capture_on_commit_callbacks: Any
) -> None:
    objects = make_objects(tenant_a)
    client = auditor(tenant_a)
    # ExportedCall records which calls the file holds (so erasure can remove the file).
    export_tables = frozenset({"audit.CallExport", "audit.AccessLog", "audit.ExportedCall"})
    before = database_state(skip=export_tables)
    exports_before = CallExport.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("dashboard:export_create"),
            {"call": objects.kwargs["call_id"], "format": "csv"},
        )

    assert response.status_code == 302
    assert database_state(skip=export_tables) == before
    assert CallExport.objects.count() == exports_before + 1
    assert list(ExportedCall.objects.values_list("call__public_id", flat=True)) == [
        objects.kwargs["call_id"]
    ]
    log = AccessLog.objects.get()
    assert (log.action, log.role) == (AccessAction.EXPORT, Role.AUDITOR)


def test_legal_hold_is_refused_to_auditors_unless_the_tenant_allows_it(
    tenant_a: TenantWorld,
) -> None:
    objects = make_objects(tenant_a)
    url = reverse("dashboard:call_hold", args=[objects.kwargs["call_id"]])
    client = auditor(tenant_a)
    before = database_state()

    refused = client.post(url, {"hold": "on"})

    assert refused.status_code == 403
    assert database_state() == before

    tenant_a.tenant.auditors_may_hold = True
    tenant_a.tenant.save()

    allowed = client.post(url, {"hold": "on"})

    assert allowed.status_code == 302
    assert CallSession.objects.get(public_id=objects.kwargs["call_id"]).legal_hold
