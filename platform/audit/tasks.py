"""Celery tasks of the audit app: start and write a call export, remove expired files."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import OperationalError, transaction
from django.http import HttpRequest

from audit.exports import (
    ExportError,
    ExportRemoved,
    fail_export,
    record_export,
    remove_expired_exports,
    stop_removed_export,
    write_export,
)
from audit.models import CallExport
from calls.models import CallSession
from foundation.retries import retried_on_outages
from tenancy.models import Membership

logger = logging.getLogger("koe.audit")


def start_export(
    request: HttpRequest,
    membership: Membership,
    export_format: str,
    *,
    call: CallSession | None = None,
    filters: dict[str, list[str]] | None = None,
) -> CallExport:
    """Record an export (``audit.exports.record_export``, which raises ``ExportError`` for
    what cannot be exported) and queue its task once the export row is committed."""
    with transaction.atomic():
        export = record_export(request, membership, export_format, call=call, filters=filters)
        transaction.on_commit(lambda: run_export_task.delay(export.pk))
    return export


@shared_task(bind=True, **retried_on_outages(), soft_time_limit=3300, time_limit=3600)
def run_export_task(self: Any, export_id: int) -> str:
    """Write one export; a rerun (redelivery, retry) starts the file over.

    A database outage is retried; anything else marks the export failed with a message
    the requester sees, and is logged: the request that queued it (run eagerly in the
    embedded setup) must not fail with it.
    """
    try:
        export = write_export(export_id)
    except CallExport.DoesNotExist:
        logger.warning("export: export=%s no longer exists", export_id)
        return "gone"
    except ExportRemoved:
        # Erasure or retention removed calls it was copying: nothing is published.
        logger.info("export: export=%s was removed while it was written", export_id)
        stop_removed_export(export_id)
        return "removed"
    except OperationalError:
        if self.request.retries >= self.max_retries:
            fail_export(export_id, "The database was unavailable; request the export again.")
        raise
    except ExportError as error:
        # E.g. the filters name an agent deleted since: say so rather than export nothing.
        logger.warning("export: export=%s cannot be made: %s", export_id, error)
        fail_export(export_id, str(error))
        return "failed"
    except SoftTimeLimitExceeded:
        logger.error("export: export=%s ran past its time limit", export_id)
        fail_export(export_id, "The export took too long; export a smaller set of calls.")
        return "failed"
    except Exception:
        logger.exception("export: export=%s failed", export_id)
        fail_export(export_id, "The export failed; request it again or ask your operator.")
        return "failed"
    return export.status


@shared_task(acks_late=True, soft_time_limit=600, time_limit=900)
def remove_expired_exports_task() -> int:
    """Periodic (beat): delete export files past their expiry; the rows stay as a record."""
    return remove_expired_exports()
