"""Legal hold: keep a call out of retention's reach until someone lifts the hold."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.log import record_access
from audit.models import AccessAction
from calls.models import CallSession
from tenancy.models import Membership


def actor_name(membership: Membership) -> str:
    user = membership.user
    return user.email or user.get_username()


@transaction.atomic
def change_legal_hold(
    request: HttpRequest, membership: Membership, call: CallSession, *, hold: bool
) -> bool:
    """Set or lift the hold; False when the call already was in that state.

    The conditional update makes two people pressing the button at once record one
    change (and one access log row), not two. The caller checks Permission.HOLD.
    """
    # _at and _by describe the latest change, so a lifted hold still says who lifted it
    # and when; every change is also in the access log.
    fields = {
        "legal_hold": hold,
        "legal_hold_at": timezone.now(),
        "legal_hold_by": actor_name(membership),
    }
    changed = CallSession.objects.filter(pk=call.pk, legal_hold=not hold).update(**fields)
    if not changed:
        return False
    for name, value in fields.items():
        setattr(call, name, value)
    action = AccessAction.HOLD_SET if hold else AccessAction.HOLD_LIFTED
    record_access(request, membership, action, call=call)
    return True
