"""Server processes' heartbeats, and the calls of a process that stopped beating."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from agents.realtime.access import Caller, open_call
from calls import liveness
from calls.models import CallSession, ServerInstance
from calls.tasks import end_lost_calls_task
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, CallFactory

pytestmark = pytest.mark.django_db

LOST = timedelta(seconds=30)  # KOE_INSTANCE_LOST_SECONDS' default


@pytest.fixture
def agent(tenant_a: TenantWorld):  # type: ignore[no-untyped-def]
    return AgentFactory(tenant=tenant_a.tenant)


def _live_call(agent, instance: str, started_ago: timedelta) -> CallSession:  # type: ignore[no-untyped-def]
    return CallFactory(
        agent=agent, server_instance=instance, started_at=timezone.now() - started_ago
    )


def test_a_beat_records_that_the_process_is_alive() -> None:
    with time_machine.travel("2026-12-06 12:00:00Z", tick=False):
        liveness.beat("host:1~a")
    with time_machine.travel("2026-12-06 12:00:10Z", tick=False):
        liveness.beat("host:1~a")
    instance = ServerInstance.objects.get()
    assert instance.name == "host:1~a"
    assert instance.started_at.isoformat() == "2026-12-06T12:00:00+00:00"
    assert instance.last_seen_at.isoformat() == "2026-12-06T12:00:10+00:00"


def test_the_calls_of_a_silent_process_are_ended_with_the_duration_they_had(agent) -> None:  # type: ignore[no-untyped-def]
    now = timezone.now()
    ServerInstance.objects.create(name="dead~1", last_seen_at=now - LOST - timedelta(seconds=5))
    ServerInstance.objects.create(name="alive~2", last_seen_at=now - timedelta(seconds=3))
    lost = _live_call(agent, "dead~1", started_ago=timedelta(minutes=2))
    live = _live_call(agent, "alive~2", started_ago=timedelta(minutes=2))
    # A call of a process from before heartbeats: only the hour-long rule applies to it.
    legacy = _live_call(agent, "old-host:7", started_ago=timedelta(minutes=2))

    assert liveness.end_lost_calls(now) == 1
    lost.refresh_from_db()
    assert (lost.status, lost.end_reason) == ("ended", "server_lost")
    assert "dead~1" in lost.end_detail
    # Ended when the process was last known alive, not when the sweep found it.
    assert lost.ended_at == now - LOST - timedelta(seconds=5)
    assert abs(lost.duration_ms - 85_000) < 1000  # two minutes, less the silent 35 s
    for call in (live, legacy):
        call.refresh_from_db()
        assert call.status == "active"
    assert liveness.end_lost_calls(now) == 0  # idempotent
    assert end_lost_calls_task.apply().get() == 0


def test_instances_long_gone_are_forgotten(agent) -> None:  # type: ignore[no-untyped-def]
    now = timezone.now()
    ServerInstance.objects.create(name="gone~1", last_seen_at=now - timedelta(days=2))
    liveness.end_lost_calls(now)
    assert not ServerInstance.objects.exists()


def test_the_cap_never_counts_a_call_whose_process_is_dead(tenant_a: TenantWorld, agent) -> None:  # type: ignore[no-untyped-def]
    tenant_a.tenant.max_concurrent_calls = 1
    tenant_a.tenant.save(update_fields=["max_concurrent_calls"])
    ServerInstance.objects.create(name="dead~1", last_seen_at=timezone.now() - 2 * LOST)
    _live_call(agent, "dead~1", started_ago=timedelta(minutes=1))  # not yet swept
    grant = open_call(Caller(secret=tenant_a.secret, agent_id=agent.public_id))
    call = CallSession.objects.get(pk=grant.call_id)
    assert call.server_instance == liveness.INSTANCE


def test_the_dashboard_shows_a_dead_process_call_as_lost(tenant_a: TenantWorld, agent) -> None:  # type: ignore[no-untyped-def]
    ServerInstance.objects.create(name="dead~1", last_seen_at=timezone.now() - 2 * LOST)
    call = _live_call(agent, "dead~1", started_ago=timedelta(minutes=1))
    client = tenant_a.client_for("admin")
    listing = client.get("/calls/").content.decode()
    assert ">lost</span>" in listing
    detail = client.get(f"/calls/{call.public_id}/").content.decode()
    assert "No process holds this call any more" in detail
