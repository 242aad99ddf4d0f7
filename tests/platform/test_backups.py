"""Backup and restore (foundation.backups), as an operator runs them: ``manage.py backup``
on the live database, ``manage.py restore`` in a new process into a fresh database and
media folder, and the call, its transcript and its recording found whole there. On the
embedded SQLite and, in CI, on PostgreSQL (pg_dump/pg_restore)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db import connection

from calls.models import CallSession, Recording, RecordingStatus, TranscriptItem
from tests import live
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, CallFactory
from tests.live import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

AUDIO = b"RIFF" + bytes(range(256)) * 64


@pytest.fixture
def fresh_database(tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database of the kind the tests run on."""
    if connection.vendor != "postgresql":
        yield f"sqlite:///{tmp_path / 'restored.sqlite3'}"
        return
    import psycopg

    name = f"koe_restore_{secrets.token_hex(4)}"
    parts = urlsplit(os.environ["DATABASE_URL"])
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as server:
        server.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as server:
            server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def a_recorded_call(world: TenantWorld) -> CallSession:
    call = CallFactory(agent=AgentFactory(tenant=world.tenant))
    TranscriptItem.objects.create(call=call, sequence=1, role="user", text="A table for two.")
    TranscriptItem.objects.create(call=call, sequence=2, role="assistant", text="Booked.")
    name = default_storage.save(f"recordings/{call.public_id}.wav", ContentFile(AUDIO))
    Recording.objects.create(
        call=call,
        tenant=world.tenant,
        file=name,
        status=RecordingStatus.COMPLETE,
        size_bytes=len(AUDIO),
        sha256=hashlib.sha256(AUDIO).hexdigest(),
    )
    return call


def manage(*arguments: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_backup_restores_into_a_fresh_database_with_its_calls_and_recordings(
    tenant_a: TenantWorld, settings: Any, tmp_path: Path, fresh_database: str
) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    call = a_recorded_call(tenant_a)
    output = io.StringIO()
    call_command("backup", str(tmp_path / "backup"), stdout=output)
    manifest = json.loads(output.getvalue())
    assert manifest["counts"] == {"calls": 1, "transcript_items": 2, "recordings": 1}

    restored_media = tmp_path / "restored-media"
    env = {"DATABASE_URL": fresh_database, "MEDIA_ROOT": str(restored_media)}
    restored = manage("restore", str(tmp_path / "backup"), **env)
    assert restored.returncode == 0, restored.stderr
    report = json.loads(restored.stdout)
    assert report["problems"] == []
    assert report["recordings_checked"] == 1

    # What a person finds there: the call, what was said, and the recording's audio.
    found = manage(
        "shell",
        "-c",
        "from calls.models import CallSession;"
        f"call = CallSession.objects.get(public_id={call.public_id!r});"
        "print([item.text for item in call.transcript.order_by('sequence')]);"
        "print(call.recording.file.read().hex())",
        **env,
    )
    assert found.returncode == 0, found.stderr
    transcript, audio = found.stdout.strip().splitlines()[-2:]
    assert transcript == "['A table for two.', 'Booked.']"
    assert bytes.fromhex(audio) == AUDIO


def test_a_damaged_backup_is_refused_before_anything_is_written(
    tenant_a: TenantWorld, settings: Any, tmp_path: Path, fresh_database: str
) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    a_recorded_call(tenant_a)
    call_command("backup", str(tmp_path / "backup"), stdout=io.StringIO())
    archive = tmp_path / "backup" / "media.tar.gz"
    damaged = bytearray(archive.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    archive.write_bytes(bytes(damaged))

    restored_media = tmp_path / "restored-media"
    env = {"DATABASE_URL": fresh_database, "MEDIA_ROOT": str(restored_media)}
    refused = manage("restore", str(tmp_path / "backup"), **env)
    assert refused.returncode == 1
    assert "media.tar.gz is missing or damaged" in refused.stderr
    assert not restored_media.exists()
    # The fresh database is still empty: a later, good restore can go ahead.
    tables = manage(
        "shell",
        "-c",
        "from django.db import connection;print(len(connection.introspection.table_names()))",
        **env,
    )
    assert tables.stdout.strip().splitlines()[-1] == "0"


def test_a_restore_never_writes_over_a_database_in_use(
    tenant_a: TenantWorld, settings: Any, tmp_path: Path
) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    a_recorded_call(tenant_a)
    call_command("backup", str(tmp_path / "backup"), stdout=io.StringIO())
    with pytest.raises(CommandError, match="not empty"):
        call_command("restore", str(tmp_path / "backup"), stdout=io.StringIO())
    assert CallSession.objects.count() == 1
    with pytest.raises(CommandError, match="not empty: a backup goes into a new folder"):
        call_command("backup", str(tmp_path / "backup"), stdout=io.StringIO())


def test_the_drill_script_backs_up_restores_and_verifies(
    tenant_a: TenantWorld, settings: Any, tmp_path: Path
) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    a_recorded_call(tenant_a)
    drill = subprocess.run(
        [str(ROOT / "scripts" / "backup-drill"), str(tmp_path / "kept")],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": live.test_database_url(),
            "MEDIA_ROOT": str(tmp_path / "media"),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert '"recordings_checked": 1' in drill.stdout
    assert "the drill passed" in drill.stdout
    assert json.loads((tmp_path / "kept" / "manifest.json").read_text())["counts"]["calls"] == 1
