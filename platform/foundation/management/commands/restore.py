"""manage.py restore DIR: a backup into the configured, empty database and the media
folder, then verified (foundation.backups). Exits 1 when anything is missing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from foundation.backups import BackupError, restore


class Command(BaseCommand):
    help = "Restore a backup into the configured (empty) database and media folder, and verify."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", type=Path, help="a folder written by manage.py backup")

    def handle(self, *args: Any, source: Path, **options: Any) -> None:
        try:
            report = restore(source)
        except BackupError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(json.dumps(report, indent=2))
        if report["problems"]:
            raise CommandError("The restore is incomplete: " + "; ".join(report["problems"]))
