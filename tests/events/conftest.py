"""Fixtures for outbound events: a real receiver on loopback and a tenant's endpoint for it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery.exceptions import Retry

from events.models import EventEndpoint
from events.tasks import deliver_event
from tests.conftest import TenantWorld
from tests.fakes.http_receiver import HttpReceiver


@pytest.fixture(autouse=True)
def _eager_celery(settings: Any) -> None:
    # As on the embedded default, also where CI sets REDIS_URL (no worker runs here).
    settings.CELERY_TASK_ALWAYS_EAGER = True


@pytest.fixture
def receiver(settings: Any) -> Iterator[HttpReceiver]:
    settings.KOE_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    with HttpReceiver() as running:
        yield running


@pytest.fixture
def endpoint(tenant_a: TenantWorld, receiver: HttpReceiver) -> EventEndpoint:
    return EventEndpoint.objects.create(tenant=tenant_a.tenant, url=receiver.url("/koe/events"))


@pytest.fixture
def retries(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The countdowns of the retries the task asks for, when run as a worker would run it."""
    asked: list[int] = []

    def retry(*, countdown: int, **kwargs: Any) -> Retry:
        asked.append(countdown)
        return Retry(when=countdown)

    monkeypatch.setattr(deliver_event, "retry", retry)
    return asked
