"""The access log of recordings: one row per signed link, whatever range its requests ask for.

A player fetches one link in many range requests, and a client may start anywhere: the
first request made with a link is logged, never one of its later ranges; a new page view
mints new links, which are logged again.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from audit.models import AccessLog
from dashboard.views import recordings as recordings_view
from dashboard.views.recordings import DOWNLOAD, PLAY
from tenancy.roles import Role
from tests.conftest import TenantWorld
from tests.recordings.test_playback import body, link, recorded_call

pytestmark = pytest.mark.django_db


@pytest.fixture
def media_root(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def rows(action: str) -> list[AccessLog]:
    return list(AccessLog.objects.filter(action=action).order_by("pk"))


@pytest.mark.parametrize(
    ("purpose", "action", "role"),
    [(PLAY, "play_recording", Role.EDITOR), (DOWNLOAD, "download_recording", Role.AUDITOR)],
)
def test_a_first_request_that_skips_the_first_byte_is_logged(
    tenant_a: TenantWorld, media_root: Path, purpose: str, action: str, role: str
) -> None:
    call, content = recorded_call(tenant_a)
    client = tenant_a.client_for(role)

    response = client.get(link(tenant_a, role, call, purpose), HTTP_RANGE="bytes=1-")

    assert response.status_code == 206
    assert body(response) == content[1:]  # the whole recording but a byte
    [row] = rows(action)
    assert row.user == tenant_a.members[role].user
    assert row.call == call
    assert row.detail["recording_bytes"] == len(content)


@pytest.mark.parametrize(
    ("purpose", "action"), [(PLAY, "play_recording"), (DOWNLOAD, "download_recording")]
)
def test_later_requests_of_the_same_link_add_no_rows_whatever_their_range(
    tenant_a: TenantWorld, media_root: Path, purpose: str, action: str
) -> None:
    call, content = recorded_call(tenant_a)
    client = tenant_a.client_for(Role.OWNER)
    url = link(tenant_a, Role.OWNER, call, purpose)

    for header in ("bytes=40000-", "bytes=0-", "", "bytes=-100", f"bytes=0-{len(content)}"):
        response = client.get(url, HTTP_RANGE=header) if header else client.get(url)
        assert response.status_code in (200, 206)
        body(response)

    assert len(rows(action)) == 1


def test_a_new_page_view_mints_links_that_are_logged_again(
    tenant_a: TenantWorld, media_root: Path
) -> None:
    call, _ = recorded_call(tenant_a)
    client = tenant_a.client_for(Role.AUDITOR)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        first = link(tenant_a, Role.AUDITOR, call)
        client.get(first, HTTP_RANGE="bytes=0-")
        client.get(first, HTTP_RANGE="bytes=5000-")
        traveller.shift(timedelta(seconds=30))
        second = link(tenant_a, Role.AUDITOR, call)  # the page reloaded
        assert second != first
        client.get(second, HTTP_RANGE="bytes=5000-")
        client.get(second)
        client.get(first, HTTP_RANGE="bytes=9000-")  # the old link, still valid

    logged = rows("play_recording")
    assert len(logged) == 2
    # Each row says which link it was (a digest, never the token itself).
    digests = [row.detail["link"] for row in logged]
    assert digests[0] != digests[1]
    assert all(len(digest) == 16 and first.split("token=")[1] not in digest for digest in digests)


def test_a_play_link_and_a_download_link_are_each_logged(
    tenant_a: TenantWorld, media_root: Path
) -> None:
    call, _ = recorded_call(tenant_a)
    client = tenant_a.client_for(Role.ADMIN)

    client.get(link(tenant_a, Role.ADMIN, call, PLAY), HTTP_RANGE="bytes=100-")
    client.get(link(tenant_a, Role.ADMIN, call, DOWNLOAD), HTTP_RANGE="bytes=100-")

    assert len(rows("play_recording")) == len(rows("download_recording")) == 1


def test_a_refused_request_does_not_use_up_the_links_log_row(
    tenant_a: TenantWorld, media_root: Path
) -> None:
    call, content = recorded_call(tenant_a)
    client = tenant_a.client_for(Role.OWNER)
    url = link(tenant_a, Role.OWNER, call)

    assert client.get(url, HTTP_RANGE=f"bytes={len(content)}-").status_code == 416
    assert rows("play_recording") == []
    assert client.get(url, HTTP_RANGE="bytes=10-").status_code == 206
    assert len(rows("play_recording")) == 1


def test_without_a_working_cache_every_request_is_logged(
    tenant_a: TenantWorld, media_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An extra row is harmless; a fetch without one is the failure to avoid."""
    call, _ = recorded_call(tenant_a)
    client = tenant_a.client_for(Role.OWNER)
    url = link(tenant_a, Role.OWNER, call)

    class UnreachableCache:
        def add(self, *args: Any, **kwargs: Any) -> bool:
            raise ConnectionError("cache down")

    monkeypatch.setattr(recordings_view, "cache", UnreachableCache())

    assert client.get(url, HTTP_RANGE="bytes=1-").status_code == 206
    assert client.get(url, HTTP_RANGE="bytes=2-").status_code == 206

    assert len(rows("play_recording")) == 2
