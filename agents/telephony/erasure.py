"""An end user's erasure reaches what telephony holds of them outside their calls.

A phone number (or a tenant's reference) may wait in a batch of calls, or stay on a phone
call that never connected (no answer, busy). On ``retention.erasure.end_user_erased``
the batch entries naming them are deleted, unless a call to them is under way (that call
is the person's new call, which a later request erases), so they are not called again,
and the phone calls forget the number.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from agents.telephony.models import BatchEntry, EntryStatus, PhoneCall
from tenancy.models import Tenant


def forget_end_user(sender: Any, *, tenant: Tenant, end_user_ref: str, **kwargs: Any) -> None:
    BatchEntry.objects.filter(batch__tenant=tenant).filter(
        Q(to=end_user_ref) | Q(end_user=end_user_ref)
    ).exclude(status=EntryStatus.CALLING).delete()
    PhoneCall.objects.filter(tenant=tenant, remote_number=end_user_ref).update(remote_number="")
