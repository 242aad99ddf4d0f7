"""Callers' phone numbers are personal data: shown in full to owners and admins, masked for
editors and auditors on the call pages and in the exports they ask for, and erased by number.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.exports import download_token
from audit.models import CallExport, ExportStatus
from calls.models import CallSession, CallStatus, ConsentScope, TranscriptItem
from foundation.phone_numbers import country_code, mask_phone_number
from tenancy.models import Membership
from tenancy.roles import Permission, Role, role_allows
from tests.api import api_client
from tests.audit.conftest import add_conversation, ended_call, visible_text
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, CallFactory

NUMBER = "+14155550199"
MASKED = "+1•••••••99"
SEES_NUMBERS = [Role.OWNER, Role.ADMIN]
MASKED_ROLES = [Role.EDITOR, Role.AUDITOR]

Export = Callable[..., CallExport]


# --- the mask --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+14155550199", "+1•••••••99"),  # NANP: one-digit code
        ("+79161234567", "+7•••••••67"),  # Russia: one-digit code
        ("+447700900123", "+44•••••••23"),  # United Kingdom: two digits
        ("+33612345678", "+33•••••••78"),
        ("+353851234567", "+353•••••••67"),  # Ireland: three digits
        ("+4201234567", "+420•••••••67"),  # Czechia: 42x is three digits, 41 and 43 two
        ("+85212345678", "+852•••••••78"),  # Hong Kong: 85x is three digits, 86 two
        ("+9715012345", "+971•••••••45"),
        ("+1234567", "+1•••••••67"),  # the shortest E.164 number
    ],
)
def test_an_e164_number_keeps_its_country_code_and_last_two_digits(
    number: str, masked: str
) -> None:
    assert mask_phone_number(number) == masked


def test_the_mask_does_not_tell_the_numbers_length() -> None:
    assert len(mask_phone_number("+4930123456")) == len(mask_phone_number("+493012345678901"))


@pytest.mark.parametrize(
    "value",
    [
        "",
        "customer-42",  # a tenant's own reference
        "patient-+14155550199",
        "anonymous",  # a withheld caller id, as carriers send it
        "14155550199",  # no plus sign
        "+1 415 555 0199",  # not digits only
        "+04155550199",  # no country code starts with 0
        "+1415555019912345",  # longer than E.164 allows
        "+12345",  # shorter
        "+14155550199\n",
    ],
)
def test_anything_that_is_not_an_e164_number_comes_back_unchanged(value: str) -> None:
    assert mask_phone_number(value) == value


def test_country_codes_of_each_length() -> None:
    assert [country_code(n) for n in ("+14155550199", "+447700900123", "+2125221234567")] == [
        "1",
        "44",
        "212",
    ]


def test_owners_and_admins_may_see_numbers_and_editors_and_auditors_may_not() -> None:
    allowed = {role for role in Role.values if role_allows(role, Permission.PHONE_NUMBERS)}
    assert allowed == {Role.OWNER, Role.ADMIN}


# --- the dashboard ---------------------------------------------------------------------------


def phone_call(world: TenantWorld, end_user_ref: str = NUMBER, **fields: Any) -> CallSession:
    return ended_call(world.tenant, channel="phone", end_user_ref=end_user_ref, **fields)


def list_text(client: Client) -> str:
    response = client.get(reverse("dashboard:call_list"))
    assert response.status_code == 200
    return visible_text(response)


def detail_text(client: Client, call: CallSession) -> str:
    response = client.get(reverse("dashboard:call_detail", args=[call.public_id]))
    assert response.status_code == 200
    return visible_text(response)


@pytest.mark.parametrize("role", MASKED_ROLES)
def test_editors_and_auditors_see_a_callers_number_masked(tenant_a: TenantWorld, role: str) -> None:
    call = phone_call(tenant_a)
    client = tenant_a.client_for(role)

    listed = list_text(client)
    shown = detail_text(client, call)

    assert MASKED in listed and MASKED in shown
    assert "masked: your role does not see callers" in shown
    for page in (listed, shown):
        assert "4155550199" not in page


@pytest.mark.parametrize("role", SEES_NUMBERS)
def test_owners_and_admins_see_a_callers_full_number(tenant_a: TenantWorld, role: str) -> None:
    call = phone_call(tenant_a)
    client = tenant_a.client_for(role)

    listed = list_text(client)
    shown = detail_text(client, call)

    assert NUMBER in listed and NUMBER in shown
    assert "•" not in listed + shown
    assert "masked" not in shown


@pytest.mark.parametrize("role", Role.values)
def test_a_tenants_own_reference_and_other_channels_are_never_masked(
    tenant_a: TenantWorld, role: str
) -> None:
    own_reference = phone_call(tenant_a, end_user_ref="patient-17")
    # A number the tenant gave as its own reference on a widget or API call is its own.
    widget = ended_call(tenant_a.tenant, channel="widget", end_user_ref="+14155550123")
    api = ended_call(tenant_a.tenant, channel="api", end_user_ref="+33612345678")
    client = tenant_a.client_for(role)

    listed = list_text(client)

    for call in (own_reference, widget, api):
        assert call.end_user_ref in listed
        shown = detail_text(client, call)
        assert call.end_user_ref in shown and "•" not in shown


def test_a_masked_search_result_masks_the_number_too(tenant_a: TenantWorld) -> None:
    call = phone_call(tenant_a)
    add_conversation(call, say="I would like to move my appointment")
    CallSession.objects.filter(pk=call.pk).update(
        transcript_text="I would like to move my appointment"
    )

    response = tenant_a.client_for(Role.AUDITOR).get(
        reverse("dashboard:call_list"), {"q": "appointment"}
    )

    page = visible_text(response)
    assert "appointment" in page and MASKED in page and "4155550199" not in page


# --- exports ---------------------------------------------------------------------------------


@pytest.fixture
def export_as(django_capture_on_commit_callbacks: Any) -> Export:
    """POST the export form as a client; the task runs when the request's work commits."""

    def export(client: Client, **data: Any) -> CallExport:
        before = set(CallExport.objects.values_list("pk", flat=True))
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(reverse("dashboard:export_create"), data)
        assert response.status_code == 302
        created = CallExport.objects.exclude(pk__in=before).get()
        assert created.status == ExportStatus.DONE, created.error
        return created

    return export


def download_link(client: Client, export: CallExport) -> str | None:
    response = client.get(reverse("dashboard:export_detail", args=[export.public_id]))
    assert response.status_code == 200
    match = re.search(r'<a class="btn" href="([^"]+)" download>', response.content.decode())
    return html.unescape(match.group(1)) if match else None


def download(client: Client, export: CallExport) -> str:
    link = download_link(client, export)
    assert link, "the page offers no download"
    response = client.get(link)
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]


def end_user_cells(content: str, export_format: str) -> list[str]:
    """The end user of each call of a file, as that format writes it."""
    if export_format == "json":
        return [record["end_user_ref"] for record in json.loads(content)["calls"]]
    if export_format == "csv":
        rows = list(csv.DictReader(io.StringIO(content)))
        return list(dict.fromkeys(row["end_user_ref"] for row in rows))
    return re.findall(r"^End user: (.*)$", content, flags=re.MULTILINE)


def two_calls(world: TenantWorld) -> list[CallSession]:
    agent = AgentFactory(tenant=world.tenant)
    phone = phone_call(world, agent=agent)
    add_conversation(phone)
    widget = ended_call(
        world.tenant,
        agent=agent,
        channel="widget",
        end_user_ref="+14155550123",
        started_at=phone.started_at + timedelta(minutes=1),
    )
    return [phone, widget]


@pytest.mark.parametrize("export_format", ["json", "csv", "txt"])
@pytest.mark.parametrize("role", [Role.AUDITOR, Role.OWNER, Role.ADMIN])  # those who export
def test_an_export_masks_phone_numbers_unless_its_asker_may_see_them(
    tenant_a: TenantWorld, export_as: Export, role: str, export_format: str
) -> None:
    two_calls(tenant_a)
    client = tenant_a.client_for(role)
    masked = role not in SEES_NUMBERS

    export = export_as(client, query="", format=export_format)
    content = download(client, export)

    assert export.masks_phone_numbers is masked
    # CSV writes a cell starting with "+" as text ('+…), as it writes every such cell.
    prefix = "'" if export_format == "csv" else ""
    expected = [f"{prefix}{MASKED if masked else NUMBER}", f"{prefix}+14155550123"]
    assert end_user_cells(content, export_format) == expected
    assert ("4155550199" in content) is not masked
    if export_format == "json":
        assert json.loads(content)["export"]["phone_numbers_masked"] is masked


def test_a_single_call_export_of_an_auditor_masks_the_number(
    tenant_a: TenantWorld, export_as: Export
) -> None:
    call = phone_call(tenant_a)
    add_conversation(call)
    client = tenant_a.client_for(Role.AUDITOR)

    export = export_as(client, call=call.public_id, format="json")

    [record] = json.loads(download(client, export))["calls"]
    assert record["end_user_ref"] == MASKED
    assert record["transcript"][0]["text"] == "Is Dr Mori in today?"


def test_the_askers_role_when_asking_decides_not_when_the_task_runs(
    tenant_a: TenantWorld, django_capture_on_commit_callbacks: Any
) -> None:
    phone_call(tenant_a)
    auditor = tenant_a.members[Role.AUDITOR]
    client = tenant_a.client_for(Role.AUDITOR)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        client.post(reverse("dashboard:export_create"), {"query": "", "format": "json"})
    Membership.objects.filter(pk=auditor.pk).update(role=Role.ADMIN)
    for callback in queued:
        callback()

    export = CallExport.objects.get()
    assert export.status == ExportStatus.DONE
    [record] = json.loads(download(client, export))["calls"]
    assert record["end_user_ref"] == MASKED


def test_an_auditor_cannot_download_an_owners_export_that_shows_numbers(
    tenant_a: TenantWorld, export_as: Export
) -> None:
    phone_call(tenant_a)
    export = export_as(tenant_a.client_for(Role.OWNER), query="", format="csv")
    auditor = tenant_a.client_for(Role.AUDITOR)
    link = reverse("dashboard:export_download", args=[export.public_id])
    link += f"?token={quote(download_token(export))}"

    page = auditor.get(reverse("dashboard:export_detail", args=[export.public_id]))
    refused = auditor.get(link, follow=True)

    assert download_link(auditor, export) is None
    assert "which your role does not see" in visible_text(page)
    assert refused.redirect_chain[-1][0] == reverse(
        "dashboard:export_detail", args=[export.public_id]
    )
    assert "which your role does not see" in visible_text(refused)
    assert "4155550199" not in refused.content.decode()
    # The admin, who may see numbers, downloads it.
    assert NUMBER in download(tenant_a.client_for(Role.ADMIN), export)


def test_an_auditor_downloads_an_owners_export_without_phone_calls(
    tenant_a: TenantWorld, export_as: Export
) -> None:
    ended_call(tenant_a.tenant, end_user_ref="customer-42")
    export = export_as(tenant_a.client_for(Role.OWNER), query="", format="json")

    content = download(tenant_a.client_for(Role.AUDITOR), export)

    assert end_user_cells(content, "json") == ["customer-42"]


def test_an_owner_downloads_an_auditors_masked_export(
    tenant_a: TenantWorld, export_as: Export
) -> None:
    phone_call(tenant_a)
    export = export_as(tenant_a.client_for(Role.AUDITOR), query="", format="txt")

    content = download(tenant_a.client_for(Role.OWNER), export)

    assert end_user_cells(content, "txt") == [MASKED]


# --- erasure by number -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path_ref", [quote(NUMBER, safe=""), NUMBER])
def test_erasing_a_number_erases_its_phone_calls_transcripts(
    tenant_a: TenantWorld, path_ref: str
) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    ended = {"status": CallStatus.ENDED, "ended_at": timezone.now()}
    call = CallFactory(
        agent=agent,
        channel="phone",
        end_user_ref=NUMBER,
        consent_scope=ConsentScope.TRANSCRIPT,
        transcript_text="My number is the one I am calling from.",
        **ended,
    )
    TranscriptItem.objects.create(
        call=call, sequence=1, role="user", text="My number is the one I am calling from."
    )
    other = CallFactory(
        agent=agent,
        channel="phone",
        end_user_ref="+14155550100",
        consent_scope=ConsentScope.TRANSCRIPT,
        **ended,
    )
    TranscriptItem.objects.create(call=other, sequence=1, role="user", text="Hello")

    # "+" in a URL path is a plus sign, so the number may be sent as it is or encoded.
    response = api_client(tenant_a.secret).post(f"/v1/end_users/{path_ref}/erasure")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["end_user_ref"], body["calls"], body["transcripts"]) == (NUMBER, 1, 1)
    call.refresh_from_db()
    assert (call.end_user_ref, call.transcript_text) == ("", "")
    assert call.transcript_purged_at is not None
    assert not TranscriptItem.objects.filter(call=call).exists()
    assert TranscriptItem.objects.filter(call=other).count() == 1
    assert CallSession.objects.get(pk=other.pk).end_user_ref == "+14155550100"
