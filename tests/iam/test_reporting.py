"""What IAM refused reaches the main job's reason and its run report (principal, action, resource)."""

from __future__ import annotations

from pathlib import Path

from harness.iam.enforcement import Denial
from harness.iam.reporting import with_denials
from harness.report import RunReport, write_report

DENIAL = Denial(
    "arn:aws:sts::123456789012:assumed-role/StateMachineRole/StepFunctions",
    "sagemaker:CreateTrainingJob",
    "arn:aws:sagemaker:us-east-1:123456789012:training-job/run-train",
    "implicit-deny",
).as_dict()


def test_a_reason_without_the_denial_gets_it_and_one_with_it_stays() -> None:
    reason = with_denials("Train failed: execution FAILED", [DENIAL])
    assert reason == (
        "Train failed: execution FAILED (IAM denied: arn:aws:sts::123456789012:assumed-role/StateMachineRole/"
        "StepFunctions may not sagemaker:CreateTrainingJob on "
        "arn:aws:sagemaker:us-east-1:123456789012:training-job/run-train)"
    )
    assert with_denials(DENIAL["message"], [DENIAL]) == DENIAL["message"]
    assert with_denials("no denial", []) == "no denial"


def test_the_run_report_lists_the_denials(tmp_path: Path) -> None:
    pipeline = {"pipeline": "p", "execution_id": "e", "status": "Failed", "started_at": 0.0, "stages": []}
    write_report(tmp_path, RunReport(pipeline=pipeline, access_denied=[DENIAL]))
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "## Access denied (IAM)" in markdown
    assert (
        f"| {DENIAL['principal']} | sagemaker:CreateTrainingJob | {DENIAL['resource']} | implicit-deny |"
        in (markdown)
    )
    assert "Access denied (IAM)" in (tmp_path / "index.html").read_text(encoding="utf-8")
