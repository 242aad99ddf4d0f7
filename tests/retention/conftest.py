"""Calls with stored content at chosen ages, recordings in a temporary MEDIA_ROOT."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from agents.models import Agent
from calls.models import CallSession, CallStatus, ConsentScope, Recording, TranscriptItem
from tests.factories import CallFactory
from tools.invocations import ToolInvocation

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(28)


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    """A fresh MEDIA_ROOT: default storage writes (and the purge deletes) under it."""
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = str(root)
    return root


@dataclass
class StoredCall:
    call: CallSession
    recording: Recording | None

    @property
    def file_name(self) -> str:
        assert self.recording is not None
        return self.recording.file.name

    def refresh(self) -> CallSession:
        self.call.refresh_from_db()
        return self.call

    def has_recording_row(self) -> bool:
        return Recording.objects.filter(call=self.call).exists()

    def transcript_count(self) -> int:
        return TranscriptItem.objects.filter(call=self.call).count()

    def invocation(self) -> ToolInvocation:
        return ToolInvocation.objects.get(call=self.call)


def stored_call(
    agent: Agent | None,
    *,
    ended_days_ago: float | None = 100,
    tenant: Any = None,
    consent: str = ConsentScope.RECORDING,
    end_user_ref: str = "",
    legal_hold: bool = False,
    live: bool = False,
    with_recording: bool = True,
) -> StoredCall:
    """A call that stored what ``consent`` allows: transcript, tool call, recording file."""
    now = timezone.now()
    fields: dict[str, Any] = {
        "consent_scope": consent,
        "end_user_ref": end_user_ref,
        "legal_hold": legal_hold,
    }
    if live:
        fields.update(status=CallStatus.ACTIVE, started_at=now - timedelta(minutes=5))
    else:
        assert ended_days_ago is not None
        ended = now - timedelta(days=ended_days_ago)
        fields.update(
            status=CallStatus.ENDED, started_at=ended - timedelta(minutes=3), ended_at=ended
        )
    if agent is None:
        assert tenant is not None
        call = CallSession.objects.create(
            tenant=tenant,
            agent=None,
            agent_name="Deleted agent",
            version_number=1,
            channel="api",
            provider="local",
            model="koe-local",
            **fields,
        )
    else:
        call = CallFactory(agent=agent, **fields)
    stores_transcript = consent in (ConsentScope.TRANSCRIPT, ConsentScope.RECORDING)
    recording = None
    if stores_transcript:
        call.transcript_text = "I would like to book a table for four"
        call.follow_up_reason = "Caller wants a window seat"
        call.save(update_fields=["transcript_text", "follow_up_reason"])
        TranscriptItem.objects.create(call=call, sequence=1, role="user", text="Table for four")
        TranscriptItem.objects.create(call=call, sequence=2, role="assistant", text="Booked.")
        ToolInvocation.objects.create(
            tenant=call.tenant,
            tool_name="book_table",
            call=call,
            function_call_id="fc_1",
            idempotency_key=f"{call.public_id}:fc_1",
            source="call",
            execution="inline",
            status="succeeded",
            stores_content=True,
            arguments={"party_size": 4, "name": "Ada"},
            result='{"booked": true}',
            duration_ms=120,
        )
    if consent == ConsentScope.RECORDING and with_recording:
        recording = Recording(call=call, tenant=call.tenant, status="complete")
        recording.file.save(f"{call.public_id}.wav", ContentFile(WAV), save=False)
        recording.save()
    return StoredCall(call=call, recording=recording)


def age_file(path: Path, hours: float) -> None:
    """Set a file's modification time ``hours`` back."""
    moment = timezone.now().timestamp() - hours * 3600
    os.utime(path, (moment, moment))
