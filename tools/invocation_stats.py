"""How a tool has been doing: invocation counts, error rate and p50/p95 duration.

The percentiles are taken over the most recent DURATION_SAMPLE durations of the period,
read newest first through the (tenant, tool, -created_at) index, so a busy tool's page
costs the same as a quiet one's.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from tools.invocations import InvocationStatus, ToolInvocation
from tools.models import ToolDefinition

DURATION_SAMPLE = 1000
RECENT_DAYS = 7


@dataclass(frozen=True)
class InvocationSummary:
    count: int  # every invocation, finished or not
    failed: int
    finished: int  # succeeded or failed
    cancelled: int  # the call ended first: not counted in the error rate
    p50_ms: int | None
    p95_ms: int | None

    @property
    def error_rate(self) -> float | None:
        """Percent of the finished invocations that failed (None: none finished)."""
        if not self.finished:
            return None
        return round(100 * self.failed / self.finished, 1)


def percentile(sorted_values: Sequence[int], fraction: float) -> int | None:
    """Nearest-rank percentile of ascending values: always one of them."""
    if not sorted_values:
        return None
    rank = max(math.ceil(fraction * len(sorted_values)), 1)
    return sorted_values[rank - 1]


def summarize(invocations: QuerySet[ToolInvocation]) -> InvocationSummary:
    totals = invocations.aggregate(
        count=Count("pk"),
        failed=Count("pk", filter=Q(status=InvocationStatus.FAILED)),
        cancelled=Count("pk", filter=Q(status=InvocationStatus.CANCELLED)),
        finished=Count(
            "pk", filter=Q(status__in=[InvocationStatus.SUCCEEDED, InvocationStatus.FAILED])
        ),
    )
    recent = (
        invocations.filter(duration_ms__isnull=False)
        .order_by("-created_at")
        .values_list("duration_ms", flat=True)[:DURATION_SAMPLE]
    )
    durations = sorted(duration for duration in recent if duration is not None)
    return InvocationSummary(
        count=totals["count"],
        failed=totals["failed"],
        finished=totals["finished"],
        cancelled=totals["cancelled"],
        p50_ms=percentile(durations, 0.5),
        p95_ms=percentile(durations, 0.95),
    )


def tool_summaries(
    tool: ToolDefinition, now: datetime.datetime | None = None
) -> list[tuple[str, InvocationSummary]]:
    """The tool's summary over the last RECENT_DAYS days, then over all time."""
    invocations = ToolInvocation.objects.filter(tenant=tool.tenant, tool=tool)
    since = (now or timezone.now()) - datetime.timedelta(days=RECENT_DAYS)
    return [
        (f"Last {RECENT_DAYS} days", summarize(invocations.filter(created_at__gte=since))),
        ("All time", summarize(invocations)),
    ]
