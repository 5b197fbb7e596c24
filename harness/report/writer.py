"""Writes one run's report to a folder: JSON for tools, a Markdown page and an HTML page for people.

Files: `summary.json` (everything below, machine-readable), `timeline.json`, `timeline.svg`,
`statemachine.svg` (the execution's path), `loss.svg` (the training loss curve), `report.md` and
`index.html` (the same content; the HTML shows the pictures inline; calls IAM refused come first, with
the principal, the action and the resource). The writer adds no time or
randomness of its own: the same inputs give the same bytes.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.report.metrics import final_metrics, loss_curve_svg, loss_points, parse_metric_lines
from harness.report.statemachine import GraphvizMissing, notice_svg, render_svg, state_statuses
from harness.report.timeline import timeline_rows, timeline_svg


@dataclass(frozen=True)
class RunReport:
    """What one run leaves to report. Only `pipeline` is required."""

    pipeline: Mapping[str, Any]  # PipelineResult.to_json()
    state_machine: Mapping[str, Any] | None = None  # the ASL definition
    execution_arn: str | None = None
    execution_history: Sequence[Mapping[str, Any]] = ()  # get_execution_history's events
    training_log: str = ""
    registry_item: Mapping[str, Any] | None = None
    sample_answers: Sequence[Mapping[str, Any]] = ()
    details: Mapping[str, str] = field(default_factory=dict)  # endpoint, API URL, ... (shown as given)
    # Calls IAM refused: {"principal", "action", "resource", "reason", "message"} each.
    access_denied: Sequence[Mapping[str, str]] = ()


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str) + "\n"


def write_report(folder: Path, report: RunReport) -> Path:
    """Writes the report's files into `folder` (created); returns the path of `index.html`."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = timeline_rows(report.pipeline)
    records = parse_metric_lines(report.training_log.splitlines())
    points = loss_points(records)
    metrics = final_metrics(records)
    statuses: dict[str, str] = {}
    if report.state_machine is not None:
        statuses = dict(state_statuses(report.state_machine, report.execution_history))
        title = (
            f"State machine path: {report.execution_arn}" if report.execution_arn else "State machine path"
        )
        try:
            picture = render_svg(report.state_machine, statuses, title)
        except GraphvizMissing as error:  # the report stays whole; the picture says what is missing
            picture = notice_svg(str(error), title)
        (folder / "statemachine.svg").write_text(picture, encoding="utf-8")
    (folder / "loss.svg").write_text(loss_curve_svg(points), encoding="utf-8")
    (folder / "timeline.svg").write_text(timeline_svg(report.pipeline), encoding="utf-8")
    timeline = [row.__dict__ for row in rows]
    (folder / "timeline.json").write_text(_json(timeline), encoding="utf-8")
    summary = {
        "pipeline": report.pipeline,
        "execution_arn": report.execution_arn,
        "state_statuses": statuses,
        "loss_curve": [{"epoch": x, "train_loss": y} for x, y in points],
        "metrics": metrics,
        "registry_item": report.registry_item,
        "sample_answers": list(report.sample_answers),
        "details": dict(report.details),
        "access_denied": [dict(denial) for denial in report.access_denied],
    }
    (folder / "summary.json").write_text(_json(summary), encoding="utf-8")
    (folder / "report.md").write_text(_markdown(report, rows, statuses, metrics), encoding="utf-8")
    index = folder / "index.html"
    index.write_text(_html(report, rows, statuses, metrics), encoding="utf-8")
    return index


def _headline(report: RunReport) -> str:
    pipeline = report.pipeline
    line = f"{pipeline.get('pipeline')} execution {pipeline.get('execution_id')}: {pipeline.get('status')}"
    if pipeline.get("failed_stage"):
        line += f" at {pipeline['failed_stage']} ({pipeline.get('reason')})"
    return line


DENIAL_HEADER = ["principal", "action", "resource", "reason"]


def _denial_rows(report: RunReport) -> list[list[str]]:
    return [
        [
            str(d.get("principal", "")),
            str(d.get("action", "")),
            str(d.get("resource", "")),
            str(d.get("reason", "")),
        ]
        for d in report.access_denied
    ]


def _answer_rows(report: RunReport) -> list[list[str]]:
    return [
        [
            str(a.get("query", "")),
            str(a.get("expected", "")),
            str(a.get("intent", "")),
            str(a.get("http_status", "")),
        ]
        for a in report.sample_answers
    ]


def _markdown(
    report: RunReport, rows: list[Any], statuses: Mapping[str, str], metrics: Mapping[str, float]
) -> str:
    def table(header: list[str], body: list[list[str]]) -> list[str]:
        cells = [[cell.replace("|", "\\|").replace("\n", " ") for cell in row] for row in body]
        return [
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in cells),
        ]

    lines = ["# Run report", "", _headline(report), ""]
    for key, value in sorted(report.details.items()):
        lines.append(f"- {key}: {value}")
    if report.access_denied:
        lines += ["", "## Access denied (IAM)", ""]
        lines += table(DENIAL_HEADER, _denial_rows(report))
    lines += ["", "## Stage timeline", "", "![timeline](timeline.svg)", ""]
    lines += table(
        ["stage", "action", "status", "start (s)", "duration (s)", "detail"],
        [
            [r.stage, r.action or "", r.status, f"{r.start_s:.2f}", f"{r.duration_s:.2f}", r.detail]
            for r in rows
        ],
    )
    if statuses:
        lines += [
            "",
            "## State machine",
            "",
            f"Execution: {report.execution_arn}",
            "",
            "![state machine](statemachine.svg)",
            "",
        ]
        lines += table(["state", "status"], [[name, status] for name, status in statuses.items()])
    lines += ["", "## Training", "", "![loss](loss.svg)", ""]
    lines += table(["metric", "value"], [[name, f"{value:.4g}"] for name, value in metrics.items()])
    lines += ["", "## Registry item", "", "```json", _json(report.registry_item).rstrip(), "```", ""]
    lines += ["## Sample answers", ""]
    lines += table(["query", "expected", "intent", "HTTP"], _answer_rows(report))
    return "\n".join(lines) + "\n"


def _html(
    report: RunReport, rows: list[Any], statuses: Mapping[str, str], metrics: Mapping[str, float]
) -> str:
    def table(header: list[str], body: list[list[str]]) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
        return f"<table><tr>{head}</tr>{cells}</table>"

    parts = [
        "<!doctype html>",
        '<html><head><meta charset="utf-8"/><title>Run report</title>',
        "<style>body{font-family:Helvetica,Arial,sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}</style></head><body>",
        "<h1>Run report</h1>",
        f"<p>{html.escape(_headline(report))}</p>",
        "<ul>"
        + "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in sorted(report.details.items()))
        + "</ul>",
        *(
            ["<h2>Access denied (IAM)</h2>", table(DENIAL_HEADER, _denial_rows(report))]
            if report.access_denied
            else []
        ),
        "<h2>Stage timeline</h2>",
        '<img src="timeline.svg" alt="timeline"/>',
        table(
            ["stage", "action", "status", "start (s)", "duration (s)", "detail"],
            [
                [r.stage, r.action or "", r.status, f"{r.start_s:.2f}", f"{r.duration_s:.2f}", r.detail]
                for r in rows
            ],
        ),
    ]
    if statuses:
        parts += [
            "<h2>State machine</h2>",
            f"<p>Execution: {html.escape(str(report.execution_arn))}</p>",
            '<img src="statemachine.svg" alt="state machine path"/>',
        ]
    parts += [
        "<h2>Training</h2>",
        '<img src="loss.svg" alt="training loss"/>',
        table(["metric", "value"], [[name, f"{value:.4g}"] for name, value in metrics.items()]),
        "<h2>Registry item</h2>",
        f"<pre>{html.escape(_json(report.registry_item))}</pre>",
        "<h2>Sample answers</h2>",
        table(["query", "expected", "intent", "HTTP"], _answer_rows(report)),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
