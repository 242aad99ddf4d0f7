"""Signals the call core sends, for the apps above it (which it never imports)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent once a call's end is committed (however it ended: hung up, timed out, its server
# lost), with call=<CallSession>.
call_ended = Signal()
