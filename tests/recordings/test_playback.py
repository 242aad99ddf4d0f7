"""Playing and downloading recordings: signed per-viewer links, roles, ranges, the access log."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AccessLog
from calls.models import CallSession, CallStatus, ConsentScope, Recording, RecordingStatus
from calls.recordings import RecordingWriter
from dashboard.views.recordings import (
    DOWNLOAD,
    PLAY,
    UnsatisfiableRange,
    byte_range,
    signed_link,
)
from tenancy.roles import Role
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, CallFactory

pytestmark = pytest.mark.django_db

EXPORTING_ROLES = [Role.OWNER, Role.ADMIN, Role.AUDITOR]


@pytest.fixture
def media_root(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def recorded_call(world: TenantWorld, seconds: float = 1.0) -> tuple[CallSession, bytes]:
    """An ended call with a complete recording written by the recording writer."""
    agent = AgentFactory(tenant=world.tenant, recording_offered=True)
    started = timezone.now() - timedelta(minutes=3)
    call = CallFactory(
        agent=agent,
        consent_scope=ConsentScope.RECORDING,
        status=CallStatus.ENDED,
        started_at=started,
        ended_at=started + timedelta(seconds=seconds),
    )
    writer = RecordingWriter(world.tenant.public_id, call.public_id)
    samples = np.random.default_rng(3).integers(-3000, 3000, int(48_000 * seconds), dtype="<i2")
    writer.write_part(samples.tobytes())
    stored = writer.compose()
    Recording.objects.create(
        call=call,
        tenant=world.tenant,
        file=stored.name,
        status=RecordingStatus.COMPLETE,
        duration_ms=stored.duration_ms,
        size_bytes=stored.size_bytes,
        sha256=stored.sha256,
        started_at=started + timedelta(milliseconds=250),
        completed_at=call.ended_at,
    )
    content = (Path(writer.storage.path(stored.name))).read_bytes()
    return call, content


def body(response: Any) -> bytes:
    assert response.streaming, "recordings are streamed, never built in memory"
    return b"".join(response.streaming_content)


def link(world: TenantWorld, role: str, call: CallSession, purpose: str = PLAY) -> str:
    return signed_link(world.members[role], call, purpose)


def logged(action: str) -> int:
    return AccessLog.objects.filter(action=action).count()


# --- the call page -----------------------------------------------------------------------------


@pytest.mark.parametrize("role", Role.values)
def test_the_call_page_has_a_player_for_every_role_and_a_download_for_exporters(
    tenant_a: TenantWorld, media_root: Path, role: str
) -> None:
    call, content = recorded_call(tenant_a)
    client = tenant_a.client_for(role)

    page = client.get(reverse("dashboard:call_detail", args=[call.public_id]))

    assert page.status_code == 200
    text = page.content.decode()
    assert 'data-recording-offset-ms="250"' in text
    assert "dashboard/recording-player.js" in text
    audio = re.search(r'<audio controls preload="none" src="([^"]+)"', text)
    assert audio is not None
    played = client.get(html.unescape(audio.group(1)))
    assert played.status_code == 200
    assert body(played) == content
    download = re.search(r'href="([^"]+)" download>', text)
    if role in EXPORTING_ROLES:
        assert download is not None
        downloaded = client.get(html.unescape(download.group(1)))
        assert downloaded.status_code == 200
        assert downloaded["Content-Disposition"] == f'attachment; filename="{call.public_id}.wav"'
        assert body(downloaded) == content
    else:
        assert download is None


def test_a_call_without_recording_consent_shows_no_player(
    tenant_a: TenantWorld, media_root: Path
) -> None:
    call = CallFactory(agent=AgentFactory(tenant=tenant_a.tenant), consent_scope="transcript")
    page = tenant_a.client_for(Role.OWNER).get(
        reverse("dashboard:call_detail", args=[call.public_id])
    )
    assert page.status_code == 200
    assert b"<audio" not in page.content
    assert b"data-recording-offset-ms" not in page.content


def test_a_recording_still_being_made_or_failed_is_explained_not_played(
    tenant_a: TenantWorld, media_root: Path
) -> None:
    call = CallFactory(
        agent=AgentFactory(tenant=tenant_a.tenant), consent_scope=ConsentScope.RECORDING
    )
    recording = Recording.objects.create(call=call, tenant=tenant_a.tenant)
    client = tenant_a.client_for(Role.AUDITOR)
    url = reverse("dashboard:call_detail", args=[call.public_id])
    assert b"Recording in progress" in client.get(url).content
    recording.status = RecordingStatus.FAILED
    recording.save()
    page = client.get(url).content
    assert b"The recording of this call failed" in page and b"<audio" not in page
    # A link minted anyway finds nothing to play.
    assert client.get(link(tenant_a, Role.AUDITOR, call)).status_code == 404


# --- ranges --------------------------------------------------------------------------------------


def test_play_answers_byte_ranges_with_206_and_the_exact_bytes(
    tenant_a: TenantWorld, media_root: Path
) -> None:
    call, content = recorded_call(tenant_a)
    client = tenant_a.client_for(Role.AUDITOR)
    url = link(tenant_a, Role.AUDITOR, call)

    response = client.get(url, HTTP_RANGE="bytes=100-1123")
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 100-1123/{len(content)}"
    assert response["Content-Length"] == "1024"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "audio/wav"
    assert response["Content-Disposition"].startswith("inline")
    assert "no-store" in response["Cache-Control"]
    assert body(response) == content[100:1124]

    tail = client.get(url, HTTP_RANGE="bytes=-10")
    assert tail.status_code == 206 and body(tail) == content[-10:]
    rest = client.get(url, HTTP_RANGE=f"bytes={len(content) - 5}-")
    assert rest.status_code == 206 and body(rest) == content[-5:]
    beyond_end = client.get(url, HTTP_RANGE="bytes=0-99999999")
    assert beyond_end.status_code == 206 and body(beyond_end) == content

    whole = client.get(url)
    assert whole.status_code == 200
    assert whole["Accept-Ranges"] == "bytes"
    assert whole["Content-Length"] == str(len(content))
    assert body(whole) == content


def test_a_range_outside_the_file_answers_416(tenant_a: TenantWorld, media_root: Path) -> None:
    call, content = recorded_call(tenant_a)
    response = tenant_a.client_for(Role.OWNER).get(
        link(tenant_a, Role.OWNER, call), HTTP_RANGE=f"bytes={len(content)}-"
    )
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(content)}"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", None),
        ("bytes=0-", (0, 999)),
        ("bytes=10-19", (10, 19)),
        ("bytes=990-5000", (990, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=20-10", None),  # invalid: ignored
        ("bytes=0-1,5-6", None),  # several ranges: the whole file
        ("items=0-1", None),
        ("bytes=abc", None),
    ],
)
def test_range_headers_are_read_as_http_says(header: str, expected: Any) -> None:
    assert byte_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=-0", "bytes=5000-6000"])
def test_unsatisfiable_ranges_are_refused(header: str) -> None:
    with pytest.raises(UnsatisfiableRange):
        byte_range(header, 1000)


# --- who may use a link ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", EXPORTING_ROLES)
def test_exporting_roles_download_the_recording_as_an_attachment(
    tenant_a: TenantWorld, media_root: Path, role: str
) -> None:
    call, content = recorded_call(tenant_a)
    response = tenant_a.client_for(role).get(link(tenant_a, role, call, DOWNLOAD))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{call.public_id}.wav"'
    assert body(response) == content


def test_an_editor_cannot_download_even_with_a_signed_link(
    tenant_a: TenantWorld, media_root: Path
) -> None:
    call, _ = recorded_call(tenant_a)
    response = tenant_a.client_for(Role.EDITOR).get(link(tenant_a, Role.EDITOR, call, DOWNLOAD))
    assert response.status_code == 403
    assert "Editor" in response.content.decode()
    assert logged("download_recording") == 0


def test_a_play_link_does_not_download(tenant_a: TenantWorld, media_root: Path) -> None:
    call, _ = recorded_call(tenant_a)
    play_url = link(tenant_a, Role.OWNER, call, PLAY)
    token = play_url.split("?", 1)[1]
    url = reverse("dashboard:recording_download", args=[call.public_id]) + "?" + token
    assert tenant_a.client_for(Role.OWNER).get(url).status_code == 403


def test_an_expired_link_is_refused_with_a_clear_message(
    tenant_a: TenantWorld, media_root: Path, settings: Any
) -> None:
    settings.KOE_RECORDING_URL_SECONDS = 300
    call, _ = recorded_call(tenant_a)
    client = tenant_a.client_for(Role.AUDITOR)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        url = link(tenant_a, Role.AUDITOR, call)
        traveller.shift(timedelta(seconds=299))
        assert client.get(url, HTTP_RANGE="bytes=0-9").status_code == 206
        traveller.shift(timedelta(seconds=2))
        response = client.get(url)
    assert response.status_code == 403
    assert "expired" in response.content.decode()


def test_a_link_used_by_another_member_of_the_tenant_is_refused(
    tenant_a: TenantWorld, media_root: Path
) -> None:
    call, _ = recorded_call(tenant_a)
    owners_link = link(tenant_a, Role.OWNER, call, DOWNLOAD)
    response = tenant_a.client_for(Role.ADMIN).get(owners_link)
    assert response.status_code == 403
    assert "someone else" in response.content.decode()
    assert logged("download_recording") == 0


def test_another_tenants_member_is_refused(
    tenant_a: TenantWorld, tenant_b: TenantWorld, media_root: Path
) -> None:
    call, _ = recorded_call(tenant_a)
    outsider = tenant_b.client_for(Role.OWNER)
    # Someone else's link: refused.
    assert outsider.get(link(tenant_a, Role.OWNER, call)).status_code == 403
    # A link signed for the outsider's own tenant does not reach another tenant's call.
    assert outsider.get(signed_link(tenant_b.members[Role.OWNER], call, PLAY)).status_code == 404
    # Nor does the call page.
    page = outsider.get(reverse("dashboard:call_detail", args=[call.public_id]))
    assert page.status_code == 404
    assert AccessLog.objects.count() == 0


def test_membership_and_role_are_checked_when_the_link_is_used(
    tenant_a: TenantWorld, media_root: Path
) -> None:
    call, _ = recorded_call(tenant_a)
    auditor = tenant_a.members[Role.AUDITOR]
    client = tenant_a.client_for(Role.AUDITOR)
    download_url = link(tenant_a, Role.AUDITOR, call, DOWNLOAD)
    play_url = link(tenant_a, Role.AUDITOR, call, PLAY)
    auditor.role = Role.EDITOR  # demoted after the page was rendered
    auditor.save()
    assert client.get(download_url).status_code == 403
    assert client.get(play_url).status_code == 200
    auditor.delete()  # removed from the tenant
    assert client.get(play_url).status_code == 403


def test_a_tampered_or_missing_token_is_refused(tenant_a: TenantWorld, media_root: Path) -> None:
    call, _ = recorded_call(tenant_a)
    client = tenant_a.client_for(Role.OWNER)
    url = link(tenant_a, Role.OWNER, call)
    assert client.get(url[:-3] + "xyz").status_code == 403
    bare = reverse("dashboard:recording_play", args=[call.public_id])
    response = client.get(bare)
    assert response.status_code == 403
    assert "not valid" in response.content.decode()


def test_signed_out_visitors_are_sent_to_log_in(tenant_a: TenantWorld, media_root: Path) -> None:
    call, _ = recorded_call(tenant_a)
    response = Client().get(link(tenant_a, Role.OWNER, call))
    assert response.status_code == 302
    assert reverse("dashboard:login") in response["Location"]


def test_a_recording_removed_by_retention_is_gone(tenant_a: TenantWorld, media_root: Path) -> None:
    call, _ = recorded_call(tenant_a)
    url = link(tenant_a, Role.OWNER, call)
    call.recording_purged_at = timezone.now()
    call.save()
    client = tenant_a.client_for(Role.OWNER)
    assert client.get(url).status_code == 404
    page = client.get(reverse("dashboard:call_detail", args=[call.public_id])).content
    assert b"<audio" not in page


# --- the access log ---------------------------------------------------------------------------------


def test_each_play_and_download_is_logged_once_not_per_range_request(
    tenant_a: TenantWorld, media_root: Path
) -> None:
    call, content = recorded_call(tenant_a)
    auditor = tenant_a.members[Role.AUDITOR]
    client = tenant_a.client_for(Role.AUDITOR)
    url = link(tenant_a, Role.AUDITOR, call)

    client.get(url, HTTP_RANGE="bytes=0-", HTTP_USER_AGENT="Firefox")  # a play starts
    client.get(url, HTTP_RANGE="bytes=40000-")  # the player seeks
    client.get(url, HTTP_RANGE=f"bytes={len(content) - 100}-")
    client.get(url)  # played again from the start with the same link
    assert logged("play_recording") == 1
    with time_machine.travel(timezone.now() + timedelta(seconds=2)):
        client.get(link(tenant_a, Role.AUDITOR, call))  # the page reloaded: a new link
    assert logged("play_recording") == 2

    client.get(link(tenant_a, Role.AUDITOR, call, DOWNLOAD))
    assert logged("download_recording") == 1

    row = AccessLog.objects.filter(action="play_recording").order_by("pk").first()
    assert row is not None
    assert row.tenant == tenant_a.tenant
    assert row.user == auditor.user
    assert row.role == Role.AUDITOR
    assert row.call == call and row.call_public_id == call.public_id
    assert row.user_agent == "Firefox"
