"""Backups of what Koe cannot rebuild: the database and the media store (recordings).

``manage.py backup DIR`` writes, into a new folder:

- ``database.dump``: PostgreSQL's own consistent snapshot (``pg_dump --format=custom``,
  taken inside one transaction while Koe runs), or ``database.sqlite3`` on the embedded
  default (SQLite's online backup API, equally consistent);
- ``media.tar.gz``: the media folder (``MEDIA_ROOT``: recordings, exports);
- ``manifest.json``: when, from which kind of database, the SHA-256 of each file, and
  how many calls, transcript items and recordings the database held, to check a restore.

``manage.py restore DIR`` checks every file against the manifest first (a damaged backup
is refused before anything is written), restores into the configured database, which
must be empty (a restore never overwrites live data), and media folder, then verifies:
the counts match, and every finished recording's file is there with the SHA-256 recorded
when it was written. ``scripts/backup-drill`` does both into a fresh database.

Run the backup as often as the loss you can bear (a call's recording is written when the
call ends). With recordings on object storage instead of ``MEDIA_ROOT``, back the bucket
up with its own versioning; the manifest still counts the recordings the database names.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

MANIFEST = "manifest.json"
POSTGRES_DUMP = "database.dump"
SQLITE_COPY = "database.sqlite3"
MEDIA = "media.tar.gz"


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do."""


def back_up(destination: Path) -> dict[str, Any]:
    """Write a backup into ``destination`` (a new folder); returns its manifest."""
    if destination.exists() and any(destination.iterdir()):
        raise BackupError(f"{destination} is not empty: a backup goes into a new folder.")
    if not _holds_koe():
        raise BackupError("The configured database holds no Koe data (run migrate first?).")
    destination.mkdir(parents=True, exist_ok=True)
    counts = _counts()  # before the snapshot: a restore holds at least these
    if connection.vendor == "postgresql":
        _run(
            [
                "pg_dump",
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                "--file",
                str(destination / POSTGRES_DUMP),
            ]
        )
        database = POSTGRES_DUMP
    else:
        with (
            sqlite3.connect(_sqlite_path()) as source,
            sqlite3.connect(destination / SQLITE_COPY) as copy,
        ):
            source.backup(copy)
        database = SQLITE_COPY
    media_root = Path(settings.MEDIA_ROOT)
    with tarfile.open(destination / MEDIA, "w:gz") as archive:
        if media_root.exists():
            archive.add(media_root, arcname=".")
    manifest = {
        "created_at": timezone.now().isoformat(),
        "database_vendor": connection.vendor,
        "database": database,
        "counts": counts,
        "files": {name: _sha256(destination / name) for name in (database, MEDIA)},
    }
    (destination / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def restore(source: Path) -> dict[str, Any]:
    """Restore the backup in ``source`` into the configured, empty database and the media
    folder, then verify it; returns the verification report."""
    manifest = read_manifest(source)
    if manifest["database_vendor"] != connection.vendor:
        raise BackupError(
            f"This backup is of a {manifest['database_vendor']} database; the configured "
            f"one is {connection.vendor}."
        )
    if _holds_koe():
        raise BackupError(
            "The configured database is not empty: restore into a new database (a restore "
            "never overwrites live data)."
        )
    if connection.vendor == "postgresql":
        _run(
            [
                "pg_restore",
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--dbname",
                settings.DATABASES["default"]["NAME"],
                str(source / POSTGRES_DUMP),
            ]
        )
    else:
        connection.close()
        shutil.copyfile(source / SQLITE_COPY, _sqlite_path())
    media_root = Path(settings.MEDIA_ROOT)
    media_root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(source / MEDIA, "r:gz") as archive:
        archive.extractall(media_root, filter="data")  # no absolute paths, no escapes
    return verify(manifest)


def read_manifest(source: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise BackupError(f"{source} holds no readable {MANIFEST}: {error}") from error
    for name, digest in manifest["files"].items():
        path = source / name
        if not path.is_file() or _sha256(path) != digest:
            raise BackupError(f"{path} is missing or damaged (its SHA-256 differs).")
    return manifest


def verify(manifest: dict[str, Any]) -> dict[str, Any]:
    """Whether the database and media now hold what the backup says it held."""
    from calls.models import Recording, RecordingStatus

    counts = _counts()
    problems = [
        f"{name}: {counts[name]} restored, {expected} backed up"
        for name, expected in manifest["counts"].items()
        if counts.get(name, 0) < expected
    ]
    checked = 0
    for recording in Recording.objects.filter(status=RecordingStatus.COMPLETE).exclude(file=""):
        checked += 1
        name = recording.file.name or ""
        if not default_storage.exists(name):
            problems.append(f"recording of call {recording.call_id}: {name} missing")
            continue
        with default_storage.open(name, "rb") as stored:
            digest = hashlib.file_digest(stored, "sha256").hexdigest()
        if recording.sha256 and digest != recording.sha256:
            problems.append(f"recording of call {recording.call_id}: its SHA-256 differs")
    return {"counts": counts, "recordings_checked": checked, "problems": problems}


def _holds_koe() -> bool:
    return MigrationRecorder.Migration._meta.db_table in connection.introspection.table_names()


def _counts() -> dict[str, int]:
    from calls.models import CallSession, Recording, TranscriptItem

    return {
        "calls": CallSession.objects.count(),
        "transcript_items": TranscriptItem.objects.count(),
        "recordings": Recording.objects.count(),
    }


def _postgres_environment() -> dict[str, str]:
    """libpq's variables for the configured database: no password on a command line."""
    database = settings.DATABASES["default"]
    variables = {
        "PGHOST": database.get("HOST") or "",
        "PGPORT": str(database.get("PORT") or ""),
        "PGUSER": database.get("USER") or "",
        "PGPASSWORD": database.get("PASSWORD") or "",
        "PGDATABASE": database["NAME"],
    }
    return {**os.environ, **{name: value for name, value in variables.items() if value}}


def _sqlite_path() -> str:
    return str(settings.DATABASES["default"]["NAME"])


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _run(command: list[str]) -> None:
    if shutil.which(command[0]) is None:
        raise BackupError(f"{command[0]} is needed (PostgreSQL's client tools).")
    result = subprocess.run(  # noqa: S603  (fixed programs, no shell)
        command, capture_output=True, text=True, check=False, env=_postgres_environment()
    )
    if result.returncode:
        raise BackupError(f"{command[0]} failed: {result.stderr.strip()}")
