"""manage.py purge_expired [--dry-run] [--tenant <public id>]: the retention purge, now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from retention.models import PurgeTrigger
from retention.purge import purge_expired
from retention.removal import Counts
from tenancy.models import Tenant


class Command(BaseCommand):
    help = (
        "Delete transcripts, recordings and event logs past their tenant's retention policy, "
        "and reconcile recording files with their rows. Calls under legal hold are skipped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would be removed, and remove nothing.",
        )
        parser.add_argument(
            "--tenant",
            metavar="PUBLIC_ID",
            help="Only this tenant (its public id, e.g. ten_...).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run: bool = options["dry_run"]
        tenants = None
        if options["tenant"]:
            tenant = Tenant.objects.filter(public_id=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant has the public id {options['tenant']!r}.")
            tenants = [tenant]
        results = purge_expired(trigger=PurgeTrigger.COMMAND, dry_run=dry_run, tenants=tenants)
        verb = "would remove" if dry_run else "removed"
        total = Counts()
        for result in results:
            name = f"{result.tenant.name} ({result.tenant.public_id})"
            if result.busy:
                self.stdout.write(f"{name}: skipped, another purge of it is running")
                continue
            if result.log is not None and result.log.error:
                self.stderr.write(f"{name}: stopped by {result.log.error}; see the log")
            self.stdout.write(f"{name}: {verb} {describe(result.counts)}")
            for field, value in result.counts.as_dict().items():
                setattr(total, field, getattr(total, field) + value)
        summary = f"{len(results)} tenant(s): {verb} {describe(total)}"
        self.stdout.write(self.style.SUCCESS(summary) if not dry_run else summary)


# Calls kept, not data removed: said apart.
KEPT = ("held_calls", "active_calls")


def describe(counts: Counts) -> str:
    values = counts.as_dict()
    removed = ", ".join(
        f"{value} {field.replace('_', ' ')}" for field, value in values.items() if field not in KEPT
    )
    return f"{removed}; kept {values['held_calls']} call(s) under legal hold"
