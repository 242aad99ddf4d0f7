"""Template filter for a call's end user as the viewing member may see it:
``{{ call|end_user_ref:membership }}`` (a phone call's number masked without the
permission; ``calls.end_users`` decides)."""

from __future__ import annotations

from django import template

from calls.end_users import masks_phone_numbers, shown_end_user_ref
from calls.models import CallSession
from tenancy.models import Membership

register = template.Library()


@register.filter
def end_user_ref(call: CallSession, membership: Membership | None) -> str:
    """The call's end-user reference for this member; masked without a membership."""
    return shown_end_user_ref(call, masked=masks_phone_numbers(membership))
