"""Signals of the billing domain, so that it never imports its own tasks module."""

from __future__ import annotations

from django.dispatch import Signal

# Sent when a tenant's spending this month has crossed a notice threshold (80%, 100%)
# that may not have been announced yet, with tenant_id=<int>. billing.tasks queues the
# notices (which claims each threshold once a month, so a repeat sends nothing).
notices_due = Signal()
