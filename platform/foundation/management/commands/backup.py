"""manage.py backup DIR: the database and the media store, into a new folder
(foundation.backups)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from foundation.backups import BackupError, back_up


class Command(BaseCommand):
    help = "Back up the database and the media store (recordings) into a new folder."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("destination", type=Path, help="a new (or empty) folder")

    def handle(self, *args: Any, destination: Path, **options: Any) -> None:
        try:
            manifest = back_up(destination)
        except BackupError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(json.dumps(manifest, indent=2))
