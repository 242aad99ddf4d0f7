"""REST API v1 for the right to erasure (mounted at /v1: /v1/end_users/{ref}/erasure).

The tenant's backend names an end user by the reference it gave their calls
(``end_user_ref``) and Koe deletes what it stored of them; see retention.erasure.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Field, Router, Schema

from foundation.api import InvalidRequest, error_responses, request_tenant
from retention.erasure import InvalidEndUserRef, check_end_user_ref, erase_end_user

router = Router(tags=["end users"])


class ErasureSkipped(Schema):
    legal_hold: int = Field(
        description="Calls kept because they are under legal hold (lift it, then erase again)."
    )
    active: int = Field(description="Calls still live, kept: erase again once they end.")


class ErasureOut(Schema):
    object: str = Field("end_user.erasure")
    end_user_ref: str
    erasure_id: str = Field(description="The purge log entry that records this erasure.")
    calls: int = Field(description="Calls of this end user whose content was erased.")
    transcripts: int = Field(description="Calls whose transcript was deleted.")
    transcript_items: int
    tool_invocations: int = Field(description="Tool calls whose arguments and result went.")
    recordings: int
    recording_files: int = Field(description="Recording files deleted from storage.")
    events: int = Field(description="Sent events about these calls, deleted.")
    exports: int = Field(
        description="Call exports holding any of these calls: their files deleted, their "
        "pages saying why."
    )
    skipped: ErasureSkipped


@router.post(
    "/end_users/{path:end_user_ref}/erasure",
    response={200: ErasureOut, **error_responses(400)},
    summary="Erase an end user's transcripts, recordings, tool data and events",
    description="Deletes, across the tenant, what Koe stored of the calls whose "
    "`end_user_ref` is this reference (URL-encode it; it may contain `/`): transcripts, "
    "recordings and their files, tool call arguments and results, call exports holding "
    "any of those calls, the events sent about them, and then the reference itself from "
    "those calls. Call metadata (times, duration, usage, cost) stays. Calls under legal "
    "hold and calls still live are kept, with their reference, and counted in `skipped`. "
    "Safe to repeat: a second request finds only the calls kept before and counts zero "
    "for the rest. An unknown reference is not an error: it counts zero.",
)
def erase(request: HttpRequest, end_user_ref: str) -> dict[str, object]:
    try:
        check_end_user_ref(end_user_ref)
    except InvalidEndUserRef as error:
        raise InvalidRequest({"end_user_ref": [str(error)]}) from error
    erasure = erase_end_user(request_tenant(request), end_user_ref)
    counts = erasure.counts
    return {
        "object": "end_user.erasure",
        "end_user_ref": end_user_ref,
        "erasure_id": erasure.log.public_id,
        "calls": erasure.calls,
        "transcripts": counts.transcripts,
        "transcript_items": counts.transcript_items,
        "tool_invocations": counts.tool_invocations,
        "recordings": counts.recordings,
        "recording_files": counts.recording_files,
        "events": counts.events,
        "exports": counts.exports,
        "skipped": {"legal_hold": counts.held_calls, "active": counts.active_calls},
    }
