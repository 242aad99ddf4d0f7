"""Ends of calls that could not be written, kept on local disk until they can.

A call that ends while the database is away keeps trying (KOE_END_RETRY_SECONDS); if
its server must stop first, or the outage outlasts that, what the call still had to
write (its last transcript items and usage, its end, when it really ended) goes to a
file in KOE_SPOOL_DIR. The server writes spooled ends as it beats (calls.liveness), so
they reach the database once it is back, also after the server restarted.

A file is claimed by renaming it before it is written, so two servers sharing the
directory never write one end twice; the transcript, usage and end of a call are
written in one transaction.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction

from calls.ledger import end_call, store_progress

logger = logging.getLogger("koe.spool")


def spool_dir() -> Path:
    return Path(settings.KOE_SPOOL_DIR)


def write(call_id: int, call_public_id: str, end: dict[str, Any]) -> Path:
    """Keep one call's unwritten end: ``end`` holds store_progress's arguments and
    ``reason``, ``detail``, ``ended_at`` (ISO 8601)."""
    directory = spool_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{call_id}-{call_public_id}.json"
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps({"call_id": call_id, **end}))
    os.replace(partial, path)  # never a half-written file under the real name
    logger.warning("spooled the end of call %s to %s", call_public_id, path)
    return path


def replay(claimant: str) -> int:
    """Write every spooled end this process can claim; returns how many were written."""
    directory = spool_dir()
    if not directory.is_dir():
        return 0
    written = 0
    for path in sorted(directory.glob("*.json")):
        claimed = path.with_name(f"{path.name}.{claimant}")
        try:
            os.rename(path, claimed)
        except OSError:
            continue  # another process took it
        try:
            _write(json.loads(claimed.read_text()))
        except (OperationalError, InterfaceError) as error:
            os.rename(claimed, path)  # for the next try
            logger.warning("could not write spooled end %s yet: %r", path.name, error)
            break  # the database is still away: leave the rest for later too
        except Exception:
            # Not an outage: this one can never be written. Kept aside for a person.
            os.rename(claimed, path.with_suffix(".failed"))
            logger.exception("spooled end %s cannot be written; kept as .failed", path.name)
            continue
        claimed.unlink()
        written += 1
    if written:
        logger.info("wrote %d spooled call end(s)", written)
    return written


@transaction.atomic
def _write(end: dict[str, Any]) -> None:
    store_progress(
        end["call_id"],
        transcript=end["transcript"],
        usage=end["usage"],
        interrupted_item_ids=end["interrupted_item_ids"],
        turn_count=end["turn_count"],
        latencies_ms=end["latencies_ms"],
    )
    end_call(
        end["call_id"],
        end["reason"],
        end["detail"],
        ended_at=datetime.fromisoformat(end["ended_at"]),
    )
