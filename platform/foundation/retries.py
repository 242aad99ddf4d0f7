"""One way Koe's Celery tasks retry a failure around them.

A database that went away (restart, failover), or for a task that sends mail its mail
server, is retried with growing pauses (5 s doubling up to 10 minutes, jittered), at most
``MAX_RETRIES`` times; the task is acknowledged late, so one whose worker died runs again.
Anything else is a bug that a retry would only repeat.

Two tasks retry as part of what they do, and keep their own rules: a background tool that
timed out or could not reach its server (``tools.tasks``) and an event on its published
delivery schedule (``events.tasks``).
"""

from __future__ import annotations

from typing import Any

from django.db import OperationalError

MAX_RETRIES = 8


def retried_on_outages(*also: type[BaseException]) -> dict[str, Any]:
    """``shared_task`` options for this policy; ``also``: more outages to wait out."""
    return {
        "acks_late": True,
        "autoretry_for": (OperationalError, *also),
        "retry_backoff": 5,
        "retry_backoff_max": 600,
        "retry_jitter": True,
        "max_retries": MAX_RETRIES,
    }
