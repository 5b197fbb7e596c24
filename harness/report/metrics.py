"""Training metrics from the training log's metric lines, and the loss curve as an SVG.

The container prints `epoch=N; train_loss=X;` once per epoch and `accuracy=..; macro_f1=..;` at the
end (the lines the state machine's MetricDefinitions match). `parse_metric_lines` reads every
`name=value;` pair; `loss_points` takes the `train_loss` series (x = `epoch` when the line has one,
else its position); `final_metrics` keeps the last value of every other metric.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

from harness.report.svg import document, element, number

_PAIR = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)=([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?);")
_SERIES_KEYS = {"epoch", "train_loss", "step"}


def parse_metric_lines(log_lines: Iterable[str]) -> list[dict[str, float]]:
    """One dict per line that carries at least one `name=value;` pair, in log order."""
    records = []
    for line in log_lines:
        pairs = {name: float(value) for name, value in _PAIR.findall(line)}
        if pairs:
            records.append(pairs)
    return records


def loss_points(
    records: Sequence[Mapping[str, float]], metric: str = "train_loss"
) -> list[tuple[float, float]]:
    points = []
    for index, record in enumerate(r for r in records if metric in r):
        value = record[metric]
        if math.isfinite(value):
            points.append((record.get("epoch", float(index + 1)), value))
    return points


def final_metrics(records: Sequence[Mapping[str, float]]) -> dict[str, float]:
    final: dict[str, float] = {}
    for record in records:
        for name, value in record.items():
            if name not in _SERIES_KEYS:
                final[name] = value
    return dict(sorted(final.items()))


def loss_curve_svg(points: Sequence[tuple[float, float]], title: str = "Training loss") -> str:
    """A line chart with axes, ticks and a point per epoch; a note when there is nothing to plot."""
    width, height, left, right, top, bottom = 560.0, 320.0, 60.0, 20.0, 36.0, 44.0
    body = [element("text", {"x": width / 2, "y": 22, "font-size": 14, "text-anchor": "middle"}, title)]
    if not points:
        body.append(
            element("text", {"x": width / 2, "y": height / 2, "text-anchor": "middle"}, "no train_loss lines")
        )
        return document(width, height, body, title)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_low, x_high = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y_low, y_high = min(0.0, min(ys)), max(ys) * 1.05 if max(ys) > 0 else 1.0
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x_low) / (x_high - x_low) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (y - y_low) / (y_high - y_low) * plot_h

    axis: dict[str, str | float] = {"stroke": "#333333", "stroke-width": 1}
    body.append(
        element("line", {"x1": left, "y1": top + plot_h, "x2": left + plot_w, "y2": top + plot_h, **axis})
    )
    body.append(element("line", {"x1": left, "y1": top, "x2": left, "y2": top + plot_h, **axis}))
    for index in range(5):
        value = y_low + (y_high - y_low) * index / 4
        y = sy(value)
        body.append(
            element("line", {"x1": left - 4, "y1": y, "x2": left + plot_w, "y2": y, "stroke": "#e0e0e0"})
        )
        body.append(
            element(
                "text", {"x": left - 8, "y": y + 4, "font-size": 10, "text-anchor": "end"}, f"{value:.3g}"
            )
        )
    for x_value in sorted(set(xs)):
        x = sx(x_value)
        body.append(
            element(
                "text",
                {"x": x, "y": top + plot_h + 16, "font-size": 10, "text-anchor": "middle"},
                f"{x_value:g}",
            )
        )
    body.append(
        element(
            "text",
            {"x": left + plot_w / 2, "y": height - 8, "text-anchor": "middle", "font-size": 11},
            "epoch",
        )
    )
    line = " ".join(f"{number(sx(x))},{number(sy(y))}" for x, y in points)
    body.append(
        element(
            "polyline",
            {"class": "loss", "points": line, "fill": "none", "stroke": "#1565c0", "stroke-width": 2},
        )
    )
    for x, y in points:
        body.append(
            element("circle", {"class": "point", "cx": sx(x), "cy": sy(y), "r": 3, "fill": "#1565c0"})
        )
    return document(width, height, body, title)
