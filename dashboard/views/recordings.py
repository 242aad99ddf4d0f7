"""Playing and downloading a call's recording through short-lived signed links.

The call page mints a link per viewer: signed (its own salt), valid for a few minutes,
bound to the call, the viewer, the tenant and what it is for (play or download). Each
request checks the link *and* the viewer's membership and role at that moment: playing
needs VIEW, downloading EXPORT, so a role changed or a member removed since the page was
rendered loses access at once, and a link copied to someone else is refused. The file is
streamed from storage with byte ranges (audio players seek with them).

Every link is written to the access log the first time it is used, whatever range that
first request asks for: a player fetches one link in many range requests (seeks, buffering),
so logging per request would flood the log, while logging only requests that start at byte
0 would let ``Range: bytes=1-`` fetch the whole file unlogged. A new page view mints new
links, so playing the call again from a fresh page is logged again.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.cache import cache
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseForbidden,
    StreamingHttpResponse,
)
from django.urls import reverse
from django.views.decorators.http import require_safe

from audit.log import record_access
from audit.models import AccessAction
from calls.models import CallSession, ConsentScope, Recording, RecordingStatus
from tenancy.models import Membership
from tenancy.roles import Permission
from tenancy.scoping import get_for_tenant_or_404

SALT = "koe.dashboard.recording-link"
PLAY = "play"
DOWNLOAD = "download"
NEEDS = {PLAY: Permission.VIEW, DOWNLOAD: Permission.EXPORT}
LOGGED_AS = {PLAY: AccessAction.PLAY_RECORDING, DOWNLOAD: AccessAction.DOWNLOAD_RECORDING}
STREAM_CHUNK_BYTES = 64 * 1024
_SINGLE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
LOGGED_LINK_KEY = "koe:recording-link-logged:{digest}"

logger = logging.getLogger(__name__)


class UnsatisfiableRange(Exception):
    """The Range asks for bytes the file does not have (416)."""


@dataclass(frozen=True)
class RecordingPanel:
    """What the call page shows of the recording, with fresh links for this viewer."""

    recording: Recording | None
    play_url: str = ""
    download_url: str = ""
    offset_ms: int = 0  # from the call's start to the recording's first sample
    link_seconds: int = 0

    @property
    def is_playable(self) -> bool:
        return bool(self.play_url)

    @property
    def duration_display(self) -> str:
        """mm:ss of the recording (minutes keep counting past an hour)."""
        minutes, seconds = divmod((self.recording.duration_ms if self.recording else 0) // 1000, 60)
        return f"{minutes:02d}:{seconds:02d}"

    @property
    def link_minutes(self) -> int:
        return max(1, self.link_seconds // 60)


def signed_link(membership: Membership, call: CallSession, purpose: str) -> str:
    token = signing.TimestampSigner(salt=SALT).sign_object(
        {
            "call": call.public_id,
            "tenant": membership.tenant.public_id,
            "user": membership.user_id,
            "for": purpose,
        }
    )
    name = "dashboard:recording_play" if purpose == PLAY else "dashboard:recording_download"
    return f"{reverse(name, args=[call.public_id])}?{urlencode({'token': token})}"


def recording_panel(membership: Membership, call: CallSession) -> RecordingPanel | None:
    """The call page's recording panel; None when consent did not cover recording."""
    if call.consent_scope != ConsentScope.RECORDING:
        return None
    recording = Recording.objects.filter(call=call).first()
    if (
        recording is None
        or recording.status != RecordingStatus.COMPLETE
        or not recording.file
        or call.recording_purged_at is not None
    ):
        return RecordingPanel(recording)
    can_download = membership.allows(Permission.EXPORT)
    return RecordingPanel(
        recording,
        play_url=signed_link(membership, call, PLAY),
        download_url=signed_link(membership, call, DOWNLOAD) if can_download else "",
        offset_ms=max(0, round((recording.started_at - call.started_at).total_seconds() * 1000)),
        link_seconds=settings.KOE_RECORDING_URL_SECONDS,
    )


@require_safe
@login_required
def recording_play(request: HttpRequest, call_id: str) -> HttpResponseBase:
    return _serve(request, call_id, PLAY)


@require_safe
@login_required
def recording_download(request: HttpRequest, call_id: str) -> HttpResponseBase:
    return _serve(request, call_id, DOWNLOAD)


def _serve(request: HttpRequest, call_id: str, purpose: str) -> HttpResponseBase:
    try:
        claims = signing.TimestampSigner(salt=SALT).unsign_object(
            request.GET.get("token", ""), max_age=settings.KOE_RECORDING_URL_SECONDS
        )
    except signing.SignatureExpired:
        return _forbidden("This recording link has expired. Reload the call page for a new one.")
    except signing.BadSignature:
        return _forbidden("This recording link is not valid.")
    if (
        not isinstance(claims, dict)
        or claims.get("for") != purpose
        or claims.get("call") != call_id
        or claims.get("user") != request.user.pk
    ):
        return _forbidden("This recording link was issued to someone else or for another use.")
    membership = (
        Membership.objects.select_related("tenant", "user")
        .filter(user_id=claims["user"], tenant__public_id=claims.get("tenant"))
        .first()
    )
    if membership is None:
        return _forbidden("You are no longer a member of this call's organisation.")
    if not membership.allows(NEEDS[purpose]):
        role = membership.get_role_display()
        return _forbidden(f"Your role ({role}) cannot {purpose} recordings.")
    call = get_for_tenant_or_404(CallSession.objects.all(), membership.tenant, public_id=call_id)
    recording = Recording.objects.filter(call=call, status=RecordingStatus.COMPLETE).first()
    if recording is None or not recording.file or call.recording_purged_at is not None:
        raise Http404("This call has no recording.")

    storage, name = recording.file.storage, str(recording.file.name)
    try:
        handle = storage.open(name, "rb")
    except FileNotFoundError as missing:
        raise Http404("The recording's file is missing from storage.") from missing
    size = recording.size_bytes or storage.size(name)
    try:
        wanted = byte_range(request.headers.get("Range", ""), size)
    except UnsatisfiableRange:
        handle.close()
        refusal = HttpResponse(status=416)
        refusal["Content-Range"] = f"bytes */{size}"
        return refusal
    first, last = wanted if wanted is not None else (0, size - 1)
    link_digest = hashlib.sha256(request.GET["token"].encode()).hexdigest()
    if is_first_use(link_digest):
        record_access(
            request,
            membership,
            LOGGED_AS[purpose],
            call=call,
            recording_bytes=size,
            link=link_digest[:16],
        )
    length = max(0, last - first + 1)
    response = StreamingHttpResponse(
        _read(handle, first, length),
        status=206 if wanted is not None else 200,
        content_type="audio/wav",
    )
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    if wanted is not None:
        response["Content-Range"] = f"bytes {first}-{last}/{size}"
    disposition = "attachment" if purpose == DOWNLOAD else "inline"
    response["Content-Disposition"] = f'{disposition}; filename="{call.public_id}.wav"'
    # A signed, per-viewer link: no shared cache may keep the audio.
    response["Cache-Control"] = "private, no-store"
    return response


def is_first_use(link_digest: str) -> bool:
    """Whether this is the first request made with a signed link (so it must be logged).

    ``cache.add`` is atomic (SET NX on Redis): of a player's concurrent range requests
    exactly one wins. The mark lives as long as a link can be valid. Every doubt counts as
    a first use, because an extra log row is harmless and a missing one is not: an evicted
    mark, or a cache that cannot be reached (logged).
    """
    key = LOGGED_LINK_KEY.format(digest=link_digest)
    try:
        return bool(cache.add(key, True, timeout=settings.KOE_RECORDING_URL_SECONDS))
    except Exception:  # any cache backend's error; the access is logged regardless
        logger.exception("Cache unavailable for recording link marks; logging this request")
        return True


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The (first, last) bytes, inclusive, of a single-range ``Range`` header.

    None means "send the whole file": no header, or one this view does not honour (several
    ranges, another unit, a malformed one), which HTTP allows a server to ignore.
    """
    match = _SINGLE_RANGE.fullmatch(header.strip())
    if match is None or match.groups() == ("", ""):
        return None
    first_text, last_text = match.groups()
    if not first_text:  # "bytes=-500": the last 500 bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise UnsatisfiableRange
        return max(0, size - suffix), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # invalid: ignored, like a malformed header
    if first >= size:
        raise UnsatisfiableRange
    last = min(int(last_text), size - 1) if last_text else size - 1
    return first, last


def _read(handle: IO[Any], first: int, length: int) -> Iterator[bytes]:
    try:
        handle.seek(first)
        remaining = length
        while remaining > 0:
            data = handle.read(min(STREAM_CHUNK_BYTES, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data
    finally:
        handle.close()


def _forbidden(message: str) -> HttpResponse:
    return HttpResponseForbidden(message, content_type="text/plain; charset=utf-8")
