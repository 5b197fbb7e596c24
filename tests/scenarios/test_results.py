"""The summary table, the failure details and the JUnit XML file, from real results."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from rich.console import Console

from harness.scenarios.checks import CheckResult
from harness.scenarios.replay import ScenarioResult, StepResult
from harness.scenarios.results import failure_details, junit_xml, summary_table, write_junit


def results() -> list[ScenarioResult]:
    passed = ScenarioResult(
        "happy-commit",
        Path("scenarios/happy-commit.yaml"),
        "d",
        [
            StepResult("#1 commit", "commit", "passed", 0.1),
            StepResult(
                "#2 wait",
                "wait",
                "passed",
                30.0,
                [CheckResult("pipeline[latest].status", True, "Succeeded", "Succeeded")],
            ),
        ],
        duration_s=31.5,
    )
    failed = ScenarioResult(
        "bad-requests",
        Path("scenarios/bad-requests.yaml"),
        "d",
        [
            StepResult("#1 commit", "commit", "passed", 0.1),
            StepResult(
                "#2 requests",
                "requests",
                "failed",
                0.2,
                [
                    CheckResult("http.status", True, "403", "all 1 answers"),
                    CheckResult("http.status", False, "415", "1 of 1 answers differ; first (#1): 400"),
                ],
                logs="gateway: POST /prod/predict 400\x1b[0m\x00 done",
            ),
            StepResult("#3 requests", "requests"),
        ],
        duration_s=2.25,
    )
    errored = ScenarioResult(
        "two-triggers-at-once",
        Path("scenarios/two-triggers-at-once.yaml"),
        "d",
        [StepResult("#1 commit", "commit")],
        duration_s=0.5,
        error="RuntimeError: the emulator did not start",
    )
    return [passed, failed, errored]


def test_statuses() -> None:
    passed, failed, errored = results()
    assert (passed.status, failed.status, errored.status) == ("passed", "failed", "error")
    assert [check.expected for _, check in failed.failed_checks()] == ["415"]


def test_failure_details_show_expected_actual_and_the_step_logs() -> None:
    text = failure_details(results()[1])
    assert "step #2 requests (requests): failed" in text
    assert "http.status: expected 415" in text
    assert "actual 1 of 1 answers differ; first (#1): 400" in text
    assert "| gateway: POST /prod/predict 400" in text
    assert "expected 403" not in text  # only what failed


def test_summary_table_lists_every_scenario_with_its_first_problem() -> None:
    console = Console(record=True, width=200)
    console.print(summary_table(results()))
    text = console.export_text()
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") > 2}
    assert (
        "passed" in lines["happy-commit"]
        and "2/2" in lines["happy-commit"]
        and "31.5 s" in lines["happy-commit"]
    )
    assert "failed" in lines["bad-requests"] and "2/3" in lines["bad-requests"]
    assert "#2 requests: http.status: FAILED: expected 415" in lines["bad-requests"]
    assert "harness: RuntimeError: the emulator did not start" in lines["two-triggers-at-once"]


def test_junit_xml_has_one_case_per_scenario_with_failures_errors_and_logs(tmp_path: Path) -> None:
    path = write_junit(results(), tmp_path / "reports" / "scenarios.xml")
    suite = ET.parse(path).getroot()
    assert suite.tag == "testsuite"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    assert suite.get("time") == "34.250"
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert list(cases) == ["happy-commit", "bad-requests", "two-triggers-at-once"]
    assert cases["happy-commit"].get("classname") == "scenarios.happy-commit"
    assert list(cases["happy-commit"]) == []
    failure = cases["bad-requests"].find("failure")
    assert failure is not None and failure.get("message", "").startswith("#2 requests: http.status: FAILED")
    assert "expected 415" in (failure.text or "")
    out = cases["bad-requests"].find("system-out")
    assert out is not None and out.text == "gateway: POST /prod/predict 400\ufffd[0m\ufffd done"
    error = cases["two-triggers-at-once"].find("error")
    assert error is not None and error.get("message") == "harness: RuntimeError: the emulator did not start"


def test_junit_tree_can_be_built_without_writing() -> None:
    assert junit_xml([]).getroot().get("tests") == "0"
