"""The geometry of a server-rendered SVG bar chart: one bar per value, a rounded scale.

Only the drawing uses floats; the values, the scale's ticks and the tooltips are the
exact numbers (Decimal for money) that the caller passes in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 12, 28
MAX_AXIS_LABELS = 8
TARGET_TICKS = 4


@dataclass(frozen=True)
class Bar:
    slot_x: float  # the bar's slot, the whole plot height, carries its tooltip
    slot_width: float
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class AxisLabel:
    x: float
    label: str


@dataclass(frozen=True)
class BarChart:
    bars: list[Bar]
    ticks: list[Tick]
    axis_labels: list[AxisLabel]
    width: int = WIDTH
    height: int = HEIGHT
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    plot_top: int = TOP
    plot_bottom: int = HEIGHT - BOTTOM

    @property
    def plot_height(self) -> int:
        return self.plot_bottom - self.plot_top

    @property
    def tick_label_x(self) -> int:
        return self.plot_left - 6

    @property
    def axis_label_y(self) -> int:
        return self.height - 8


@dataclass(frozen=True)
class Point:
    """One value to draw: its axis label (may be empty), the value and its tooltip."""

    label: str
    value: Decimal | int
    title: str


def nice_step(largest: Decimal, ticks: int = TARGET_TICKS) -> Decimal:
    """A step of 1, 2 or 5 times a power of ten that covers ``largest`` in about ``ticks``."""
    if largest <= 0:
        return Decimal(1)
    raw = largest / ticks
    magnitude = Decimal(1).scaleb(raw.adjusted())
    for multiple in (1, 2, 5, 10):
        if multiple * magnitude >= raw:
            return multiple * magnitude
    return 10 * magnitude  # not reached: 10 * magnitude always covers raw


def bar_chart(
    points: Sequence[Point],
    format_tick: Callable[[Decimal], str] = lambda value: f"{value.normalize():f}",
    whole_steps: bool = False,
) -> BarChart:
    """Bars for ``points`` left to right; ``whole_steps`` keeps the scale in integers."""
    largest = max((Decimal(point.value) for point in points), default=Decimal(0))
    step = nice_step(largest)
    if whole_steps:
        step = max(Decimal(1), step.to_integral_value(rounding=ROUND_CEILING))
    steps = max(1, math.ceil(largest / step))
    top_value = step * steps
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = HEIGHT - BOTTOM

    def y_of(value: Decimal) -> float:
        return baseline - float(value / top_value) * plot_height

    slot = plot_width / max(1, len(points))
    gap = min(slot * 0.2, 4.0)
    bars = []
    for index, point in enumerate(points):
        value = Decimal(point.value)
        height = baseline - y_of(value)
        if value > 0:
            height = max(height, 1.0)  # a small value stays visible
        slot_x = LEFT + index * slot
        bars.append(
            Bar(
                slot_x=_round(slot_x),
                slot_width=_round(slot),
                x=_round(slot_x + gap / 2),
                y=_round(baseline - height),
                width=_round(max(slot - gap, 0.5)),
                height=_round(height),
                title=point.title,
            )
        )
    ticks = [
        Tick(y=_round(y_of(step * index)), label=format_tick(step * index))
        for index in range(steps + 1)
    ]
    every = max(1, math.ceil(len(points) / MAX_AXIS_LABELS))
    axis_labels = [
        AxisLabel(x=_round(LEFT + (index + 0.5) * slot), label=point.label)
        for index, point in enumerate(points)
        if index % every == 0 and point.label
    ]
    return BarChart(bars=bars, ticks=ticks, axis_labels=axis_labels)


def _round(number: float) -> float:
    return round(number, 2)
