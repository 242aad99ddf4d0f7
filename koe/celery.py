"""The Celery application; every periodic task is scheduled here, in one place."""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "koe.settings")

app = Celery("koe")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every periodic task: cost reconciliation, the retention purge, expired exports, batch calls.
app.conf.beat_schedule = {
    # End the calls of server processes killed outright (no heartbeat for
    # KOE_INSTANCE_LOST_SECONDS); living servers do it too as they beat.
    # Event deliveries whose next retry was too far off to leave with the broker.
    "send-due-events": {
        "task": "events.tasks.send_due_events",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "end-lost-calls": {
        "task": "calls.tasks.end_lost_calls_task",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Settle calls whose settlement task was lost and re-roll yesterday and today, early
    # enough in the UTC day that yesterday's figures are final by morning.
    "reconcile-usage": {
        "task": "billing.tasks.reconcile_usage",
        "schedule": crontab(hour=0, minute=20),
        "options": {"expires": 6 * 3600},
    },
    # Delete transcripts, recordings and event logs past their tenant's retention policy
    # and reconcile recording files with their rows; each tenant under its own lease.
    "purge-expired": {
        "task": "retention.tasks.purge_expired",
        "schedule": crontab(minute=5),
        "options": {"expires": 3000},
    },
    # Delete export files past their expiry (their download links stopped working then).
    "remove-expired-exports": {
        "task": "audit.tasks.remove_expired_exports_task",
        "schedule": crontab(hour=3, minute=40),
        "options": {"expires": 6 * 3600},
    },
    # Batch calls: place the due calls of running batches (ticks may overlap safely).
    "dispatch-batches": {
        "task": "agents.telephony.tasks.dispatch_batches",
        "schedule": 15.0,
        "options": {"expires": 14},
    },
}
