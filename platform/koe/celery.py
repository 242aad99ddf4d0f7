"""The Celery application; every periodic task is scheduled here, in one place."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "koe.settings")

app = Celery("koe")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Periodic work (retention purge, cost reconciliation) is added to this schedule.
app.conf.beat_schedule = {}
