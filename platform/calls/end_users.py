"""How a call's end user is shown to a tenant's members: the one place that decides when a
phone call's number is masked (the dashboard's pages and the exports both ask here)."""

from __future__ import annotations

from calls.models import CallSession, Channel
from foundation.phone_numbers import mask_phone_number
from tenancy.models import Membership
from tenancy.roles import Permission


def masks_phone_numbers(membership: Membership | None) -> bool:
    """Whether this member sees callers' numbers masked (anyone unknown does too)."""
    return membership is None or not membership.allows(Permission.PHONE_NUMBERS)


def shown_end_user_ref(call: CallSession, *, masked: bool) -> str:
    """The call's end-user reference as shown: a phone call's number masked when ``masked``.

    Only phone calls: there the reference is the caller's (or callee's) number unless the
    tenant gave its own, which ``mask_phone_number`` leaves as it is. Other channels carry
    the tenant's own reference for its user, which its members already know it by.
    """
    if masked and call.channel == Channel.PHONE:
        return mask_phone_number(call.end_user_ref)
    return call.end_user_ref
