"""The right to erasure: delete what Koe stored of one end user, across a tenant.

An end user is the tenant's own reference for them (CallSession.end_user_ref). Erasure
deletes their calls' transcripts (items, joined text, the agent's follow-up reason),
recordings (rows and files), tool invocations' arguments and results, the call exports
that hold any of their calls (files deleted, the rows kept saying why), the events about
those calls or naming them, and finally the reference itself: it is cleared from the
erased calls and from the session tokens that carried it. The calls' metadata (times,
duration, usage, cost) stays, as it does after a retention purge: billing needs it and,
without the reference, it no longer names the person. Nothing erasure writes (the
PurgeLog) holds the reference; the access log, which is append-only, is left as it was.

Because the reference goes, a repeated request finds no calls and counts zero; calls it
kept (below) keep their reference so that a later request can erase them.

Two kinds of call are kept and reported: calls under legal hold (the hold is a legal
obligation that outranks the request; lift it and erase again) and calls still live
(their recorder is still writing; erase again once they end).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from django.db import models, transaction
from django.db.models import Exists, OuterRef
from django.dispatch import Signal
from django.utils import timezone

from audit.exports import remove_exports_holding
from audit.models import RemovedReason
from calls.models import CallSession, ConsentScope, Recording, SessionToken
from events.models import OutboundEvent
from retention.models import PurgeLog, PurgeTrigger
from retention.policies import is_live
from retention.removal import (
    BATCH_SIZE,
    Counts,
    id_batches,
    lock,
    remove_events,
    remove_recordings,
    remove_transcripts,
)
from tenancy.models import Tenant

# Sent after an erasure (``tenant``, ``end_user_ref``), so that apps holding the reference
# outside the calls (a phone number waiting in a batch of calls) forget it too.
end_user_erased = Signal()

MAX_END_USER_REF_LENGTH = CallSession._meta.get_field("end_user_ref").max_length or 200


class InvalidEndUserRef(ValueError):
    """The reference cannot name an end user (empty, too long, control characters)."""


def check_end_user_ref(end_user_ref: str) -> str:
    if not end_user_ref or not end_user_ref.strip():
        raise InvalidEndUserRef("The end-user reference is empty.")
    if len(end_user_ref) > MAX_END_USER_REF_LENGTH:
        raise InvalidEndUserRef(
            f"The end-user reference is longer than {MAX_END_USER_REF_LENGTH} characters."
        )
    if any(ord(character) < 32 or ord(character) == 127 for character in end_user_ref):
        raise InvalidEndUserRef("The end-user reference contains control characters.")
    return end_user_ref


@dataclass
class Erasure:
    calls: int
    counts: Counts
    log: PurgeLog


def erase_end_user(tenant: Tenant, end_user_ref: str, *, now: datetime | None = None) -> Erasure:
    """Erase one end user's stored content in ``tenant``; safe to repeat (then it counts 0)."""
    check_end_user_ref(end_user_ref)
    now = now or timezone.now()
    started_at = timezone.now()
    clock = time.monotonic()
    counts = Counts()
    calls = CallSession.objects.filter(tenant=tenant, end_user_ref=end_user_ref)
    erasable = calls.filter(legal_hold=False).exclude(is_live(now))
    counts.held_calls = calls.filter(legal_hold=True).count()
    counts.active_calls = calls.filter(legal_hold=False).filter(is_live(now)).count()

    # The calls to erase, fixed now: a call that ends during the request is not among
    # them (its content was not erased, so it keeps its reference for the next request).
    erasable_ids = list(erasable.order_by("pk").values_list("pk", flat=True))
    with_transcript = erasable.filter(
        consent_scope__in=[ConsentScope.TRANSCRIPT, ConsentScope.RECORDING],
        transcript_purged_at__isnull=True,
    )
    with_recording = erasable.filter(Exists(Recording.objects.filter(call=OuterRef("pk"))))
    erased_call_ids: list[str] = []
    for start in range(0, len(erasable_ids), BATCH_SIZE):
        ids = erasable_ids[start : start + BATCH_SIZE]
        # Waiting for locks, unlike the purge: a request must not quietly pass calls over.
        remove_transcripts(
            with_transcript,
            ids,
            counts,
            now=now,
            dry_run=False,
            wait=True,
            export_reason=RemovedReason.ERASURE,
        )
        remove_recordings(with_recording, ids, counts, now=now, dry_run=False, wait=True)
        erased_call_ids += forget_end_user(erasable, ids, counts, now=now)

    # The erased calls no longer carry the reference: the calls that still do were kept.
    held_call_ids = list(calls.values_list("public_id", flat=True))
    events = OutboundEvent.objects.filter(tenant=tenant)
    about_user = events.filter(
        models.Q(payload__call_id__in=erased_call_ids)
        | models.Q(payload__end_user_ref=end_user_ref)
    )
    if held_call_ids:
        kept = events.filter(payload__call_id__in=held_call_ids).values("pk")
        about_user = about_user.exclude(pk__in=models.Subquery(kept))
    for ids in id_batches(about_user):
        remove_events(about_user, ids, counts, dry_run=False, wait=True)

    # A token that may still open a call keeps the reference: that call is the person's
    # new call, which a later request erases. The others have done their work.
    SessionToken.objects.filter(tenant=tenant, end_user_ref=end_user_ref).filter(
        models.Q(used_at__isnull=False) | models.Q(expires_at__lte=timezone.now())
    ).update(end_user_ref="")

    end_user_erased.send(sender=Tenant, tenant=tenant, end_user_ref=end_user_ref)
    log = PurgeLog.objects.create(
        tenant=tenant,
        trigger=PurgeTrigger.ERASURE,
        started_at=started_at,
        duration_ms=round((time.monotonic() - clock) * 1000),
        **counts.as_dict(),
    )
    return Erasure(calls=len(erased_call_ids), counts=counts, log=log)


def forget_end_user(
    calls: models.QuerySet[CallSession], ids: list[int], counts: Counts, *, now: datetime
) -> list[str]:
    """Remove the exports holding these calls (their metadata names the person even where
    no transcript was kept) and clear the calls' end-user reference; their public ids.

    The exports are looked for again after the commit, as in ``remove_transcripts``.
    """
    with transaction.atomic():
        locked = lock(calls, ids, wait=True)
        if not locked:
            return []
        public_ids = list(
            CallSession.objects.filter(pk__in=locked).values_list("public_id", flat=True)
        )
        counts.exports += remove_exports_holding(locked, RemovedReason.ERASURE, now=now)
        CallSession.objects.filter(pk__in=locked).update(end_user_ref="")
    counts.exports += remove_exports_holding(locked, RemovedReason.ERASURE, now=now)
    return public_ids
