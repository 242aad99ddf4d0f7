"""A tenant's retention policy with its agent overrides, as the filters the purge applies."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from django.db import models
from django.db.models.functions import Coalesce

from calls.models import CallSession, CallStatus
from retention.models import RetentionPolicy
from tenancy.models import Tenant

# A call still marked active this long after it started was lost (its process died
# before it could end it): calls last at most an hour, so it is safe to treat as ended.
LOST_CALL_AFTER = timedelta(hours=6)


class Kind(StrEnum):
    """What a call keeps, each with its own number of days."""

    RECORDING = "recording_days"
    TRANSCRIPT = "transcript_days"


@dataclass(frozen=True)
class TenantPolicies:
    """The tenant's days per kind (None: keep forever) and each agent's overrides."""

    tenant_days: dict[str, int | None]
    # agent pk -> {kind: days}; only the kinds the agent overrides are present.
    agent_days: dict[int, dict[str, int]] = field(default_factory=dict)
    event_log_days: int | None = None
    has_policy: bool = False

    @classmethod
    def load(cls, tenant: Tenant) -> TenantPolicies:
        tenant_days: dict[str, int | None] = {kind.value: None for kind in Kind}
        agent_days: dict[int, dict[str, int]] = {}
        event_log_days = None
        rows = RetentionPolicy.objects.filter(tenant=tenant)
        for row in rows:
            if row.agent_id is None:
                tenant_days = {kind.value: getattr(row, kind.value) for kind in Kind}
                event_log_days = row.event_log_days
            else:
                overrides = {
                    kind.value: getattr(row, kind.value)
                    for kind in Kind
                    if getattr(row, kind.value) is not None
                }
                if overrides:
                    agent_days[row.agent_id] = overrides
        return cls(
            tenant_days=tenant_days,
            agent_days=agent_days,
            event_log_days=event_log_days,
            has_policy=bool(rows),
        )

    def days_for(self, kind: Kind, agent_id: int | None) -> int | None:
        """The days a call of this agent keeps this kind (None: forever)."""
        if agent_id is not None and kind.value in self.agent_days.get(agent_id, {}):
            return self.agent_days[agent_id][kind.value]
        return self.tenant_days[kind.value]

    def expired(self, kind: Kind, now: datetime) -> models.Q | None:
        """Calls (annotated by ``with_age_reference``) whose ``kind`` is past its policy.

        None when nothing can expire (the tenant keeps it forever and no agent overrides
        it). Ages count from the call's end, or its start when it never ended, so a
        changed policy applies to existing calls at the next run.
        """
        overriding = [agent_id for agent_id, days in self.agent_days.items() if kind.value in days]
        conditions: list[models.Q] = []
        for agent_id in overriding:
            cutoff = now - timedelta(days=self.agent_days[agent_id][kind.value])
            conditions.append(models.Q(agent_id=agent_id, age_reference__lte=cutoff))
        tenant_days = self.tenant_days[kind.value]
        if tenant_days is not None:
            cutoff = now - timedelta(days=tenant_days)
            conditions.append(
                ~models.Q(agent_id__in=overriding) & models.Q(age_reference__lte=cutoff)
                if overriding
                else models.Q(age_reference__lte=cutoff)
            )
        if not conditions:
            return None
        combined = conditions[0]
        for condition in conditions[1:]:
            combined |= condition
        return combined


def with_age_reference(queryset: models.QuerySet[CallSession]) -> models.QuerySet[CallSession]:
    """Annotate ``age_reference``: when the call ended, or started if it never ended."""
    return queryset.annotate(age_reference=Coalesce("ended_at", "started_at"))


def is_live(now: datetime) -> models.Q:
    """Calls still in progress: active, and not so old that their process must have died."""
    return models.Q(status=CallStatus.ACTIVE, started_at__gt=now - LOST_CALL_AFTER)
