"""The run report: metric lines, the loss curve, the timeline and the written folder."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from harness.report.metrics import final_metrics, loss_curve_svg, loss_points, parse_metric_lines
from harness.report.timeline import timeline_rows
from harness.report.writer import RunReport, write_report

ASL_PATH = Path(__file__).resolve().parents[2] / "deployer" / "statemachine" / "training.asl.json"
SVG = "{http://www.w3.org/2000/svg}"

LOG = """\
2026-11-28 INFO loading data
epoch=1; train_loss=2.5;
step=3/9 epoch=1 loss=2.2000 lr=2.00e-03 elapsed_s=1.0
epoch=2; train_loss=1.25;
epoch=3; train_loss=0.5;
accuracy=0.92; macro_f1=0.9; unknown_rate=0.01;
"""


def _pipeline() -> dict[str, Any]:
    """A pipeline result's JSON as PipelineResult.to_json() writes it (synthetic times)."""

    def action(
        stage: str, name: str, start: float, duration: float, status: str = "Succeeded"
    ) -> dict[str, Any]:
        return {
            "stage": stage,
            "action": name,
            "status": status,
            "started_at": start,
            "finished_at": start + duration,
            "duration_s": duration,
            "summary": f"{name} done",
            "error": None if status == "Succeeded" else "Rejected by bob: no",
        }

    stages = []
    start = 1000.0
    for name, duration, status in [
        ("Source", 0.5, "Succeeded"),
        ("Build", 2.0, "Succeeded"),
        ("Approve", 1.0, "Failed"),
    ]:
        stages.append(
            {
                "stage": name,
                "status": status,
                "started_at": start,
                "finished_at": start + duration,
                "duration_s": duration,
                "actions": [action(name, name, start, duration, status)],
            }
        )
        start += duration
    return {
        "pipeline": "p",
        "execution_id": "e-1",
        "status": "Failed",
        "started_at": 1000.0,
        "failed_stage": "Approve",
        "reason": "Rejected by bob: no",
        "stages": stages,
    }


def test_metric_lines_and_loss_points() -> None:
    records = parse_metric_lines(LOG.splitlines())
    assert loss_points(records) == [(1.0, 2.5), (2.0, 1.25), (3.0, 0.5)]
    assert final_metrics(records) == {"accuracy": 0.92, "macro_f1": 0.9, "unknown_rate": 0.01}


def test_loss_curve_points_fall_as_the_loss_falls() -> None:
    root = ET.fromstring(loss_curve_svg([(1.0, 2.5), (2.0, 1.25), (3.0, 0.5)]))
    circles = [c for c in root.iter(f"{SVG}circle") if c.get("class") == "point"]
    ys = [float(c.get("cy", "nan")) for c in circles]
    xs = [float(c.get("cx", "nan")) for c in circles]
    assert len(circles) == 3 and xs == sorted(xs)
    assert ys == sorted(ys)  # SVG y grows downwards: a falling loss draws lower and lower points
    empty = ET.fromstring(loss_curve_svg([]))
    assert any(t.text == "no train_loss lines" for t in empty.iter(f"{SVG}text"))


def test_timeline_offsets() -> None:
    rows = timeline_rows(_pipeline())
    assert [(r.stage, r.action, r.start_s) for r in rows if r.action is None] == [
        ("Source", None, 0.0),
        ("Build", None, 0.5),
        ("Approve", None, 2.5),
    ]
    assert rows[-1].detail == "Rejected by bob: no"


def test_the_report_folder(tmp_path: Path) -> None:
    report = RunReport(
        pipeline=_pipeline(),
        state_machine=json.loads(ASL_PATH.read_text()),
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:m:e-1",
        execution_history=[
            {"id": 1, "type": "ExecutionStarted"},
            {"id": 2, "type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "Train"}},
            {"id": 3, "type": "TaskStateExited", "stateExitedEventDetails": {"name": "Train"}},
            {"id": 4, "type": "ChoiceStateEntered", "stateEnteredEventDetails": {"name": "HasMetrics"}},
        ],
        training_log=LOG,
        registry_item={"ModelVersion": "3", "CommitId": "abc"},
        sample_answers=[
            {"query": "what's my balance", "expected": "balance", "intent": "balance", "http_status": 200}
        ],
        details={"api_url": "http://127.0.0.1:1/prod/predict"},
    )
    index = write_report(tmp_path / "r", report)
    files = sorted(p.name for p in index.parent.iterdir())
    assert files == [
        "index.html",
        "loss.svg",
        "report.md",
        "statemachine.svg",
        "summary.json",
        "timeline.json",
        "timeline.svg",
    ]
    summary = json.loads((index.parent / "summary.json").read_text())
    assert summary["state_statuses"]["Train"] == "succeeded"
    assert summary["state_statuses"]["HasMetrics"] == "in_progress"  # the execution still runs
    assert summary["metrics"]["accuracy"] == 0.92 and len(summary["loss_curve"]) == 3
    markdown = (index.parent / "report.md").read_text()
    assert (
        "Rejected by bob: no" in markdown
        and "what's my balance" in markdown
        and '"ModelVersion": "3"' in markdown
    )
    for svg in ("loss.svg", "statemachine.svg", "timeline.svg"):
        ET.parse(index.parent / svg)  # well-formed XML
    page = ET.fromstring((index.parent / "index.html").read_text().replace("<!doctype html>", ""))
    assert [img.get("src") for img in page.iter("img")] == ["timeline.svg", "statemachine.svg", "loss.svg"]
    # Deterministic: writing again gives the same bytes.
    again = write_report(tmp_path / "again", report)
    for name in files:
        assert (again.parent / name).read_bytes() == (index.parent / name).read_bytes()
