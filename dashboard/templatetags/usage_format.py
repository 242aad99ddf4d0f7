"""Template filters of the usage pages: spans of time for people to read."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def call_time(duration_ms: int | None) -> str:
    """Milliseconds as "12 s", "2 min 05 s" or "3 h 07 min"; an em dash when unknown."""
    if duration_ms is None:
        return "—"
    seconds = (duration_ms + 500) // 1000
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
