"""The retention purge: remove what is past its tenant's policy, then reconcile storage.

Run hourly by beat (retention.tasks.purge_expired) and by ``manage.py purge_expired``.
Each tenant is purged under a lease, so two runs at once (two beat schedulers, a worker
and the command) never purge one tenant together; inside, every batch is its own
transaction over locked rows. Each run writes a PurgeLog per tenant: counts only.

Removing a transcript also removes the call exports that copied it (their files go, their
pages say retention removed them): an export must not keep words past the policy.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from celery.exceptions import SoftTimeLimitExceeded
from django.db import models
from django.db.models import Exists, OuterRef
from django.utils import timezone

from calls.models import CallSession, ConsentScope, Recording
from events.models import EventStatus, OutboundEvent
from retention.models import PurgeLease, PurgeLog, PurgeTrigger
from retention.policies import Kind, TenantPolicies, is_live, with_age_reference
from retention.reconcile import reconcile_recordings
from retention.removal import (
    Counts,
    id_batches,
    remove_events,
    remove_recordings,
    remove_transcripts,
)
from tenancy.models import Tenant

logger = logging.getLogger(__name__)

# Longer than any one tenant's purge should take; renewed after every batch, so only a
# worker that died (or hung) loses it.
LEASE_DURATION = timedelta(minutes=15)


class LeaseLost(Exception):
    """Another run took over this tenant's purge (ours stalled past the lease)."""


@dataclass
class TenantPurge:
    """The outcome for one tenant: its log, or None when nothing needed logging."""

    tenant: Tenant
    counts: Counts
    log: PurgeLog | None
    busy: bool = False


class Lease:
    """The right to purge one tenant for a while; see PurgeLease."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.holder = uuid.uuid4().hex

    def claim(self) -> bool:
        PurgeLease.objects.get_or_create(tenant=self.tenant)
        now = timezone.now()
        claimed = (
            PurgeLease.objects.filter(tenant=self.tenant)
            .filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__lte=now))
            .update(holder=self.holder, expires_at=now + LEASE_DURATION)
        )
        return claimed == 1

    def renew(self) -> None:
        renewed = PurgeLease.objects.filter(tenant=self.tenant, holder=self.holder).update(
            expires_at=timezone.now() + LEASE_DURATION
        )
        if not renewed:
            raise LeaseLost(f"The purge lease of tenant {self.tenant.public_id} was taken over.")

    def release(self) -> None:
        PurgeLease.objects.filter(tenant=self.tenant, holder=self.holder).update(
            holder="", expires_at=None
        )


def purge_expired(
    *,
    trigger: PurgeTrigger,
    dry_run: bool = False,
    tenants: Iterable[Tenant] | None = None,
    now: datetime | None = None,
) -> list[TenantPurge]:
    """Purge every tenant (or the given ones); one tenant's failure does not stop the rest."""
    now = now or timezone.now()
    run_id = uuid.uuid4()
    return [
        purge_tenant(tenant, trigger=trigger, dry_run=dry_run, now=now, run_id=run_id)
        for tenant in (_all_tenants() if tenants is None else tenants)
    ]


def _all_tenants() -> Iterator[Tenant]:
    # In batches rather than one long-lived cursor, which a stopped run would leave open.
    for ids in id_batches(Tenant.objects.all()):
        yield from Tenant.objects.filter(pk__in=ids).order_by("pk")


def purge_tenant(
    tenant: Tenant,
    *,
    trigger: PurgeTrigger,
    dry_run: bool = False,
    now: datetime | None = None,
    run_id: uuid.UUID | None = None,
) -> TenantPurge:
    now = now or timezone.now()
    started_at = timezone.now()
    clock = time.monotonic()
    counts = Counts()
    lease = Lease(tenant)
    # A dry run changes nothing, so it needs no lease and may run beside a real one.
    if not dry_run and not lease.claim():
        logger.info("Tenant %s is being purged by another run: skipped", tenant.public_id)
        return TenantPurge(tenant, counts, log=None, busy=True)
    error = ""
    has_policy = False
    renew: Callable[[], None] = (lambda: None) if dry_run else lease.renew
    held_calls: set[int] = set()
    try:
        policies = TenantPolicies.load(tenant)
        has_policy = policies.has_policy
        for kind, remove in (
            (Kind.TRANSCRIPT, remove_transcripts),
            (Kind.RECORDING, remove_recordings),
        ):
            _purge_calls(
                tenant,
                policies,
                kind,
                remove,
                counts,
                now=now,
                dry_run=dry_run,
                renew=renew,
                held_calls=held_calls,
            )
        counts.held_calls = len(held_calls)
        _purge_events(tenant, policies, counts, now=now, dry_run=dry_run, renew=renew)
        reconcile_recordings(tenant, counts, now=now, dry_run=dry_run, renew=renew)
    except SoftTimeLimitExceeded:
        # The task's time is up: log what this tenant got, and stop the whole run.
        error = "SoftTimeLimitExceeded"
        raise
    except Exception as exc:  # logged and recorded; the other tenants still get purged
        logger.exception("Retention purge of tenant %s failed", tenant.public_id)
        error = type(exc).__name__
    finally:
        if not dry_run:
            lease.release()
        log = None
        # A tenant that keeps everything forever gets a log only when reconcile found work.
        if has_policy or counts.removed or error or trigger != PurgeTrigger.BEAT:
            log = PurgeLog.objects.create(
                tenant=tenant,
                run_id=run_id or uuid.uuid4(),
                trigger=trigger,
                dry_run=dry_run,
                started_at=started_at,
                duration_ms=round((time.monotonic() - clock) * 1000),
                error=error,
                **counts.as_dict(),
            )
    return TenantPurge(tenant, counts, log)


def _expired_calls(
    tenant: Tenant, policies: TenantPolicies, kind: Kind, now: datetime
) -> tuple[models.QuerySet[CallSession], models.QuerySet[CallSession]] | None:
    """(due calls not under hold, due calls under hold) for one kind, or None."""
    expired = policies.expired(kind, now)
    if expired is None:
        return None
    due = with_age_reference(CallSession.objects.filter(tenant=tenant)).filter(expired)
    due = due.exclude(is_live(now))
    if kind == Kind.TRANSCRIPT:
        # Only consented calls ever store a transcript; a purged one is not due twice.
        due = due.filter(
            consent_scope__in=[ConsentScope.TRANSCRIPT, ConsentScope.RECORDING],
            transcript_purged_at__isnull=True,
        )
    else:
        due = due.filter(Exists(Recording.objects.filter(call=OuterRef("pk"))))
    return due.filter(legal_hold=False), due.filter(legal_hold=True)


class Remover(Protocol):
    """remove_transcripts or remove_recordings (retention.removal)."""

    def __call__(
        self,
        calls: models.QuerySet[CallSession],
        ids: list[int],
        counts: Counts,
        *,
        now: datetime,
        dry_run: bool,
    ) -> None: ...


def _purge_calls(
    tenant: Tenant,
    policies: TenantPolicies,
    kind: Kind,
    remove: Remover,
    counts: Counts,
    *,
    now: datetime,
    dry_run: bool,
    renew: Callable[[], None],
    held_calls: set[int],
) -> None:
    """Remove one kind of content (transcripts or recordings) from the calls past its days,
    in batches; held calls are only counted."""
    found = _expired_calls(tenant, policies, kind, now)
    if found is None:
        return
    due, held = found
    held_calls.update(held.values_list("pk", flat=True))
    for ids in id_batches(due):
        remove(due, ids, counts, now=now, dry_run=dry_run)
        renew()


def _purge_events(
    tenant: Tenant,
    policies: TenantPolicies,
    counts: Counts,
    *,
    now: datetime,
    dry_run: bool,
    renew: Callable[[], None],
) -> None:
    if policies.event_log_days is None:
        return
    events = OutboundEvent.objects.filter(tenant=tenant)
    held_call_ids = CallSession.objects.filter(tenant=tenant, legal_hold=True).values_list(
        "public_id", flat=True
    )
    # By primary key: a JSON key comparison is NULL for events without a call_id, and
    # excluding a NULL would drop those events from the purge too.
    held_events = events.filter(payload__call_id__in=list(held_call_ids)).values("pk")
    # Pending events are still being delivered; events about a held call are evidence.
    due = (
        events.filter(created_at__lte=now - timedelta(days=policies.event_log_days))
        .exclude(status=EventStatus.PENDING)
        .exclude(pk__in=models.Subquery(held_events))
    )
    for ids in id_batches(due):
        remove_events(due, ids, counts, dry_run=dry_run)
        renew()
