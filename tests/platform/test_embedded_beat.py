"""The embedded default's stand-in for Celery beat: the schedule's tasks run when due."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import pytest

from koe import embedded_beat
from koe.celery import app
from tests.live import ROOT


def test_every_scheduled_task_runs_when_due_and_a_failure_stops_nothing(
    monkeypatch: Any,
) -> None:
    ran: list[str] = []

    def run(name: str) -> None:
        ran.append(name)
        if name == "events.tasks.send_due_events":
            raise RuntimeError("a task failed")

    monkeypatch.setattr(embedded_beat, "_run", run)
    schedule = {
        "often": {"task": "events.tasks.send_due_events", "schedule": 0.05},
        "batches": {"task": "agents.telephony.tasks.dispatch_batches", "schedule": 0.05},
        "daily": {"task": "billing.tasks.reconcile_usage", "schedule": 86400.0},
    }
    monkeypatch.setattr(embedded_beat, "LONGEST_SLEEP_SECONDS", 0.05)

    async def scenario() -> None:
        task = asyncio.create_task(embedded_beat.run_schedule(schedule))
        await asyncio.sleep(1.5)
        task.cancel()

    asyncio.run(scenario())
    assert ran.count("events.tasks.send_due_events") >= 2  # still running after failing
    assert ran.count("agents.telephony.tasks.dispatch_batches") >= 2
    assert "billing.tasks.reconcile_usage" not in ran  # not due yet


@pytest.mark.parametrize("name", sorted(app.conf.beat_schedule))
def test_each_scheduled_task_exists(name: str) -> None:
    app.loader.import_default_modules()
    assert app.conf.beat_schedule[name]["task"] in app.tasks


def test_a_fresh_serving_process_finds_every_scheduled_task() -> None:
    """A server imports only the task modules its code uses; the schedule names others
    (the batches' dispatch was NotRegistered in ./scripts/run until they were loaded)."""
    code = (
        "import django; django.setup()\n"
        "from koe import embedded_beat\n"
        "from koe.celery import app\n"
        "names = [entry['task'] for entry in app.conf.beat_schedule.values()]\n"
        "before = [name for name in names if name not in app.tasks]\n"
        "embedded_beat.load_tasks()\n"
        "after = [name for name in names if name not in app.tasks]\n"
        "print(bool(before), after)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "koe.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True []"
