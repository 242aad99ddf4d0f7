"""The usage page: cost and calls per day, by agent, by token kind and in carrier minutes,
and its CSV export."""

from __future__ import annotations

import datetime
import io
from decimal import Decimal
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from billing.charts import BarChart, Point, bar_chart
from billing.reports import (
    UsageReport,
    csv_filename,
    month_to_date,
    usage_report,
    utc_today,
    write_daily_csv,
)
from dashboard.access import tenant_view
from dashboard.forms.usage import CHARTS, CUSTOM, UsagePeriodForm
from tenancy.models import Membership

DISPLAY_PLACES = Decimal("0.0001")


def dollars(amount: Decimal) -> str:
    return f"${amount.quantize(DISPLAY_PLACES):f}"


def long_date(day: datetime.date) -> str:
    return f"{day.day} {day:%b %Y}"


def daily_chart(report: UsageReport, metric: str) -> BarChart:
    """Cost (or calls) per day, with each day's figures in its bar's tooltip."""
    points = []
    for day in report.days:
        calls = f"{day.calls} call{'' if day.calls == 1 else 's'}"
        points.append(
            Point(
                label=f"{day.day.day} {day.day:%b}",
                value=day.calls if metric == "calls" else day.cost,
                title=f"{day.day:%a} {long_date(day.day)}: {dollars(day.cost)}, {calls}",
            )
        )
    if metric == "calls":
        return bar_chart(points, whole_steps=True)
    return bar_chart(points, format_tick=lambda value: f"${value.normalize():f}")


@tenant_view()
def usage(request: HttpRequest, membership: Membership) -> HttpResponse:
    today = utc_today()
    form = UsagePeriodForm(request.GET, today=today)
    context: dict[str, object] = {
        "nav": "usage",
        "form": form,
        "custom": CUSTOM,
        "month": month_to_date(membership.tenant, today),
    }
    if form.is_valid():
        start, end = form.cleaned_data["dates"]
        metric = form.cleaned_data["chart"]
        report = usage_report(membership.tenant, start, end)
        query = {"period": CUSTOM, "start": start.isoformat(), "end": end.isoformat()}
        context.update(
            report=report,
            metric=metric,
            chart_title=f"{CHARTS[metric]}, {long_date(start)} to {long_date(end)} (UTC)",
            chart=daily_chart(report, metric),
            export_query=urlencode(query),
        )
    return render(request, "dashboard/usage/usage.html", context)


@tenant_view()
def usage_export(request: HttpRequest, membership: Membership) -> HttpResponse:
    form = UsagePeriodForm(request.GET, today=utc_today())
    if not form.is_valid():
        problems = "; ".join(
            f"{name}: {' '.join(str(message) for message in messages)}"
            for name, messages in form.errors.items()
        )
        return HttpResponse(
            f"No export: {problems}", status=400, content_type="text/plain; charset=utf-8"
        )
    start, end = form.cleaned_data["dates"]
    report = usage_report(membership.tenant, start, end)
    out = io.StringIO()
    write_daily_csv(report, out)
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{csv_filename(report)}"'
    return response
