"""The set page's trend chart: pass rate, outcome accuracy and citation match over the
runs, as the geometry of an inline SVG drawn by the server (templates/evaluation/
_trend_chart.html). No chart library and no script: the numbers are the page's own, the
SVG scales to the width of a phone, and its words (axis, legend, tooltips) are the
template's, in the page's language. The same figures are in a table below it.

Each series has its own dash and marker shape as well as its colour, so the lines can
be told apart without colour. A run with no value for a rate leaves a gap in its line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

# viewBox units; the SVG is drawn 100 % wide, so at 390 px a unit is ~0.75 px and the
# 16-unit labels read at ~12 px.
WIDTH = 480
HEIGHT = 220
LEFT = 62
RIGHT = 14
TOP = 14
BOTTOM = 34
MAX_X_LABELS = 8
# (GradeSummary property, CSS name, marker shape)
SERIES = (
    ("pass_rate", "pass", "circle"),
    ("outcome_accuracy", "outcome", "square"),
    ("citation_match_rate", "citation", "triangle"),
)


@dataclass
class Point:
    x: float
    y: float
    value: float
    run: object  # the GridRun

    @property
    def cx(self) -> str:
        return f"{self.x:.1f}"

    @property
    def cy(self) -> str:
        return f"{self.y:.1f}"

    @property
    def rect_x(self) -> str:
        return f"{self.x - 4:.1f}"

    @property
    def rect_y(self) -> str:
        return f"{self.y - 4:.1f}"

    @property
    def triangle(self) -> str:
        return f"{self.x:.1f},{self.y - 6:.1f} {self.x - 6:.1f},{self.y + 5:.1f} {self.x + 6:.1f},{self.y + 5:.1f}"


@dataclass
class Series:
    key: str
    css: str
    shape: str
    points: list[Point] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)  # polyline "x,y x,y" per unbroken run


@dataclass
class Chart:
    width: int
    height: int
    series: list[Series]
    y_ticks: list[tuple[str, str, int]]  # (line y, label y, percent)
    x_labels: list[tuple[str, object]]  # (x, GridRun)
    left: int = LEFT
    right: int = WIDTH - RIGHT
    axis_x: int = LEFT - 6
    label_y: int = HEIGHT - BOTTOM + 22

    @property
    def empty(self) -> bool:
        return not any(s.points for s in self.series)


def _x(index: int, count: int) -> float:
    span = WIDTH - LEFT - RIGHT
    if count <= 1:
        return LEFT + span / 2
    return LEFT + span * index / (count - 1)


def _y(value: float) -> float:
    return TOP + (1 - value) * (HEIGHT - TOP - BOTTOM)


def trend_chart(runs: Sequence) -> Chart:
    """The chart of `runs` (GridRuns with `grades`, oldest first)."""
    count = len(runs)
    series = []
    for key, css, shape in SERIES:
        line = Series(key=key, css=css, shape=shape)
        segment: list[str] = []
        for index, grid_run in enumerate(runs):
            value = getattr(grid_run.grades, key)
            if value is None:
                if segment:
                    line.segments.append(" ".join(segment))
                segment = []
                continue
            point = Point(_x(index, count), _y(value), value, grid_run)
            line.points.append(point)
            segment.append(f"{point.x:.1f},{point.y:.1f}")
        if segment:
            line.segments.append(" ".join(segment))
        series.append(line)
    step = max(1, -(-count // MAX_X_LABELS))  # ceil: at most MAX_X_LABELS labels
    labels = [
        (f"{_x(index, count):.1f}", grid_run)
        for index, grid_run in enumerate(runs)
        if index % step == 0 or index == count - 1
    ]
    gap = float(labels[-1][0]) - float(labels[-2][0]) if len(labels) > 1 else WIDTH
    if gap < (WIDTH - LEFT - RIGHT) / MAX_X_LABELS:
        del labels[-2]  # the last run's label wins over a neighbour it would overlap
    ticks = [
        (f"{_y(percent / 100):.1f}", f"{_y(percent / 100) + 5:.1f}", percent)
        for percent in (0, 25, 50, 75, 100)
    ]
    return Chart(width=WIDTH, height=HEIGHT, series=series, y_ticks=ticks, x_labels=labels)
