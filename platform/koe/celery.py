"""The Celery application; every periodic task is scheduled here, in one place."""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "koe.settings")

app = Celery("koe")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Periodic work (retention purge, cost reconciliation) is added to this schedule.
app.conf.beat_schedule = {
    # Settle calls whose settlement task was lost and re-roll yesterday and today, early
    # enough in the UTC day that yesterday's figures are final by morning.
    "reconcile-usage": {
        "task": "billing.tasks.reconcile_usage",
        "schedule": crontab(hour=0, minute=20),
        "options": {"expires": 6 * 3600},
    },
}
