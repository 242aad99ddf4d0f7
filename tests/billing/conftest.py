"""Billing tests: tasks run in-process and each test has its own cache of spending."""

from __future__ import annotations

import uuid
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _isolated(settings: Any) -> None:
    # Tasks run in-process (also where REDIS_URL is set: the real worker has its own
    # tests), and a fresh cache keeps one test's cached spending from leaking into the next.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"billing-{uuid.uuid4()}",
        }
    }
