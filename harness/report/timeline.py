"""The stage timeline of one pipeline execution: rows for a page, and a Gantt-style SVG.

Input is the pipeline result's JSON (`harness.pipeline.PipelineResult.to_json()`): stages with their
start/finish times, status and actions. Offsets are seconds from the execution's start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.report.svg import document, element

STATUS_COLOURS = {"Succeeded": "#2e8540", "Failed": "#c62828", "InProgress": "#1565c0"}


@dataclass(frozen=True)
class TimelineRow:
    stage: str
    action: str | None  # None: the stage's own row
    status: str
    start_s: float
    duration_s: float
    detail: str


def timeline_rows(pipeline: Mapping[str, Any]) -> list[TimelineRow]:
    origin = float(pipeline["started_at"])
    rows = []
    for stage in pipeline.get("stages", []):
        rows.append(
            TimelineRow(
                stage["stage"],
                None,
                stage["status"],
                float(stage["started_at"]) - origin,
                float(stage["duration_s"]),
                "",
            )
        )
        for action in stage.get("actions", []):
            rows.append(
                TimelineRow(
                    stage["stage"],
                    action["action"],
                    action["status"],
                    float(action["started_at"]) - origin,
                    float(action["duration_s"]),
                    action.get("error") or action.get("summary") or "",
                )
            )
    return rows


def timeline_svg(pipeline: Mapping[str, Any], title: str = "Pipeline timeline") -> str:
    stages = [row for row in timeline_rows(pipeline) if row.action is None]
    total = max([row.start_s + row.duration_s for row in stages] + [0.001])
    label_w, bar_w, row_h, top = 120.0, 420.0, 26.0, 36.0
    width, height = label_w + bar_w + 90, top + row_h * max(len(stages), 1) + 16
    body = [element("text", {"x": 10, "y": 22, "font-size": 14}, f"{title} ({total:.1f} s)")]
    for index, row in enumerate(stages):
        y = top + index * row_h
        colour = STATUS_COLOURS.get(row.status, "#9e9e9e")
        x = label_w + row.start_s / total * bar_w
        body.append(f'<g class="stage" data-stage="{row.stage}" data-status="{row.status}">')
        body.append(element("text", {"x": 10, "y": y + 16, "font-size": 12}, row.stage))
        body.append(
            element(
                "rect",
                {
                    "x": x,
                    "y": y + 4,
                    "width": max(row.duration_s / total * bar_w, 2.0),
                    "height": 16,
                    "fill": colour,
                },
            )
        )
        body.append(
            element(
                "text", {"x": label_w + bar_w + 8, "y": y + 16, "font-size": 11}, f"{row.duration_s:.2f} s"
            )
        )
        body.append("</g>")
    return document(width, height, body, title)
