"""The access log page (owners and admins), its filters and pages, and the read-only admin."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory
from django.urls import reverse

from audit.log import record_access
from audit.models import AccessAction, AccessLog, AppendOnly
from calls.models import CallSession
from tenancy.models import Membership
from tenancy.roles import Role
from tests.audit.conftest import ended_call, visible_text
from tests.conftest import TenantWorld

LOG_URL = reverse("dashboard:access_log")


def log(
    member: Membership, action: str, call: CallSession | None = None, **detail: Any
) -> AccessLog:
    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.9")
    return record_access(request, member, action, call=call, **detail)


@pytest.mark.parametrize("role", Role.values)
def test_only_owners_and_admins_see_the_log_and_its_link(tenant_a: TenantWorld, role: str) -> None:
    client = tenant_a.client_for(role)
    may_read = role in {Role.OWNER, Role.ADMIN}

    response = client.get(LOG_URL)
    nav = client.get(reverse("dashboard:call_list")).content.decode()

    assert response.status_code == (200 if may_read else 403)
    assert (f'href="{LOG_URL}"' in nav) is may_read
    # Exports: everyone who may export (not editors).
    assert (f'href="{reverse("dashboard:export_list")}"' in nav) is (role != Role.EDITOR)


def test_the_log_lists_this_tenants_rows_newest_first_with_who_what_and_where(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    call = ended_call(tenant_a.tenant)
    auditor = tenant_a.members[Role.AUDITOR]
    with time_machine.travel(datetime.datetime(2026, 3, 1, 9, 30, tzinfo=datetime.UTC)):
        log(auditor, AccessAction.VIEW_TRANSCRIPT, call)
    with time_machine.travel(datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)):
        log(auditor, AccessAction.EXPORT, call, export="exp_1", format="csv")
    log(tenant_b.members[Role.AUDITOR], AccessAction.VIEW_TRANSCRIPT, ended_call(tenant_b.tenant))

    response = tenant_a.client_for(Role.OWNER).get(LOG_URL)

    text = visible_text(response)
    caption = "newest first"
    assert caption in text
    text = text[text.index(caption) :]  # the table, past the filters' options
    assert len(response.context["rows"]) == 2
    assert "Exported" in text and "Viewed the transcript" in text
    assert text.index("Exported") < text.index("Viewed the transcript")
    assert "auditor@acme-dental.example" in text
    assert "bistro" not in text.lower()
    assert "203.0.113.9" in text
    assert "export: exp_1" in text and "format: csv" in text
    assert f'href="{reverse("dashboard:call_detail", args=[call.public_id])}"' in (
        response.content.decode()
    )


def test_filters_by_person_action_call_and_days(tenant_a: TenantWorld) -> None:
    first, second = ended_call(tenant_a.tenant), ended_call(tenant_a.tenant)
    auditor, admin = tenant_a.members[Role.AUDITOR], tenant_a.members[Role.ADMIN]
    with time_machine.travel(datetime.datetime(2026, 3, 1, 23, 59, tzinfo=datetime.UTC)):
        log(auditor, AccessAction.VIEW_TRANSCRIPT, first)
    with time_machine.travel(datetime.datetime(2026, 3, 2, 0, 1, tzinfo=datetime.UTC)):
        log(admin, AccessAction.HOLD_SET, second)
    with time_machine.travel(datetime.datetime(2026, 3, 5, 12, 0, tzinfo=datetime.UTC)):
        log(auditor, AccessAction.EXPORT, second, export="exp_2", format="json")
    client = tenant_a.client_for(Role.OWNER)

    def actions(**query: str) -> list[str]:
        response = client.get(LOG_URL, query)
        assert response.status_code == 200
        return [row.action for row in response.context["page"]]

    assert actions(actor=auditor.user.email) == [AccessAction.EXPORT, AccessAction.VIEW_TRANSCRIPT]
    assert actions(action=AccessAction.HOLD_SET) == [AccessAction.HOLD_SET]
    assert actions(call=second.public_id) == [AccessAction.EXPORT, AccessAction.HOLD_SET]
    assert actions(start="2026-03-02", end="2026-03-02") == [AccessAction.HOLD_SET]
    assert actions(end="2026-03-01") == [AccessAction.VIEW_TRANSCRIPT]
    assert actions(actor=auditor.user.email, start="2026-03-02") == [AccessAction.EXPORT]


def test_bad_filters_are_form_errors_not_failures(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for(Role.OWNER)

    response = client.get(
        LOG_URL, {"action": "delete_everything", "start": "someday", "end": "2026-01-01"}
    )
    reversed_days = client.get(LOG_URL, {"start": "2026-02-01", "end": "2026-01-01"})

    assert response.status_code == 200
    assert response.context["form"].errors.keys() == {"action", "start"}
    assert "The last day is before the first." in visible_text(reversed_days)


def test_the_log_is_paged_fifty_rows_at_a_time(tenant_a: TenantWorld) -> None:
    auditor = tenant_a.members[Role.AUDITOR]
    call = ended_call(tenant_a.tenant)
    for _ in range(60):
        log(auditor, AccessAction.VIEW_TRANSCRIPT, call)
    client = tenant_a.client_for(Role.ADMIN)

    first = client.get(LOG_URL)
    second = client.get(LOG_URL, {"page": "2"})
    beyond = client.get(LOG_URL, {"page": "nine"})

    assert len(first.context["page"].object_list) == 50
    assert len(second.context["page"].object_list) == 10
    assert beyond.status_code == 200 and beyond.context["page"].number == 1
    assert 'rel="next"' in first.content.decode()


def test_the_log_offers_no_way_to_change_it(tenant_a: TenantWorld) -> None:
    row = log(tenant_a.members[Role.AUDITOR], AccessAction.VIEW_TRANSCRIPT)
    client = tenant_a.client_for(Role.OWNER)

    page = client.get(LOG_URL).content.decode()

    assert 'method="post"' not in page.split('<main id="main"', 1)[1]
    assert client.post(LOG_URL).status_code == 405
    with pytest.raises(AppendOnly):
        row.delete()
    with pytest.raises(AppendOnly):
        AccessLog.objects.filter(pk=row.pk).update(action=AccessAction.EXPORT)
    assert AccessLog.objects.get(pk=row.pk).action == AccessAction.VIEW_TRANSCRIPT


def test_the_admin_shows_the_log_read_only(tenant_a: TenantWorld) -> None:
    row = log(tenant_a.members[Role.AUDITOR], AccessAction.VIEW_TRANSCRIPT)
    operator = get_user_model().objects.create_superuser("operator", "op@example.com", "pw")
    client = Client()
    client.force_login(operator)

    listing = client.get(reverse("admin:audit_accesslog_changelist"))
    change = client.get(reverse("admin:audit_accesslog_change", args=[row.pk]))
    saved = client.post(reverse("admin:audit_accesslog_change", args=[row.pk]), {"actor": "x"})

    assert listing.status_code == 200 and row.actor in listing.content.decode()
    assert change.status_code == 200 and 'name="_save"' not in change.content.decode()
    assert saved.status_code == 403
    assert client.get(reverse("admin:audit_accesslog_add")).status_code == 403
    assert client.get(reverse("admin:audit_accesslog_delete", args=[row.pk])).status_code == 403
    assert AccessLog.objects.get(pk=row.pk).actor == row.actor
