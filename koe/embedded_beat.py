"""Celery beat's schedule, run inside the server where there is no beat (embedded default).

On the embedded default Celery runs tasks eagerly and no beat process exists, so work that
only a schedule starts (batch calls' next tries, late event deliveries, the retention
purge, lost calls' ends) would never happen. The server process runs the one schedule of
``koe/celery.py`` itself instead: each task, when due, eagerly on a worker thread, one at
a time. Deployments with Redis run a real beat and leave this off.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async
from celery.schedules import BaseSchedule, maybe_schedule

logger = logging.getLogger("koe.beat")

LONGEST_SLEEP_SECONDS = 60.0


def load_tasks() -> None:
    """Import every app's tasks module, as a worker does at start: a serving process
    imports only those its code uses, and the schedule names others (batches' dispatch)."""
    from koe.celery import app

    # Forced: the lazy autodiscovery is a promise kept once, and may have been kept
    # before the apps were ready.
    app.autodiscover_tasks(force=True)


def _run(name: str) -> None:
    from django.db import close_old_connections

    from koe.celery import app

    try:
        app.tasks[name].apply()
    finally:
        close_old_connections()  # this pool thread keeps no connection between runs


async def run_schedule(beat_schedule: dict[str, dict[str, Any]] | None = None) -> None:
    """Forever: run each scheduled task when it is due (first after one interval)."""
    from koe.celery import app

    await sync_to_async(load_tasks, thread_sensitive=False)()
    schedule_entries = app.conf.beat_schedule if beat_schedule is None else beat_schedule
    entries: list[tuple[str, BaseSchedule]] = [
        (entry["task"], maybe_schedule(entry["schedule"], app=app))
        for entry in schedule_entries.values()
    ]
    last_run = {name: datetime.now(UTC) for name, _ in entries}
    while True:
        wait = LONGEST_SLEEP_SECONDS
        for name, schedule in entries:
            due, next_in = schedule.is_due(last_run[name])
            if due:
                last_run[name] = datetime.now(UTC)
                try:
                    await sync_to_async(_run, thread_sensitive=False)(name)
                except Exception:  # the next one must still run
                    logger.exception("scheduled task %s failed", name)
            wait = min(wait, max(0.5, float(next_in)))
        await asyncio.sleep(wait)


def start(loop: asyncio.AbstractEventLoop) -> None:
    loop.create_task(run_schedule(), name="koe-embedded-beat")
