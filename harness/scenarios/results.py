"""Reporting scenario results: a summary table, failure details, and a JUnit XML file for CI systems.

The JUnit file follows the common schema (one `testsuite`, one `testcase` per scenario, `failure` for a
failed expectation, `error` for a step or harness that could not run, the failing step's harness logs
in `system-out`), which GitHub Actions, CodeBuild reports, GitLab and Jenkins all read.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.scenarios.replay import ScenarioResult, StepResult

LOG_TAIL_CHARS = 8000
_STYLE = {"passed": "green", "failed": "red", "error": "red bold"}
# Characters XML 1.0 cannot hold (logs carry ANSI escapes and the odd NUL).
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def summary_table(results: Sequence[ScenarioResult]) -> Table:
    table = Table(title="Scenarios", show_lines=False)
    table.add_column("scenario")
    table.add_column("result")
    table.add_column("steps", justify="right")
    table.add_column("checks", justify="right")
    table.add_column("time", justify="right")
    table.add_column("cache", justify="right")
    table.add_column("first problem", overflow="fold")
    for result in results:
        checks = [check for step in result.steps for check in step.checks]
        ran = sum(step.status != "skipped" for step in result.steps)
        table.add_row(
            result.name,
            f"[{_STYLE[result.status]}]{result.status}[/]",
            f"{ran}/{len(result.steps)}",
            f"{sum(check.passed for check in checks)}/{len(checks)}",
            f"{result.duration_s:.1f} s",
            f"{result.training_cache_hits} hit" + ("s" if result.training_cache_hits != 1 else ""),
            first_problem(result),
        )
    return table


def first_problem(result: ScenarioResult) -> str:
    if result.error is not None:
        return f"harness: {result.error}"
    step = _failing_step(result)
    if step is None:
        return ""
    if step.error is not None:
        return f"{step.label}: {step.error}"
    check = next(check for check in step.checks if not check.passed)
    return f"{step.label}: {check}"


def _failing_step(result: ScenarioResult) -> StepResult | None:
    return next((step for step in result.steps if step.status in ("failed", "error")), None)


def failure_details(result: ScenarioResult) -> str:
    """Every failed check of the failing step with expected and actual, then that step's harness logs."""
    lines = [f"scenario {result.name} ({result.path}): {result.status}"]
    if result.error is not None:
        lines.append(f"  the harness failed: {result.error}")
    step = _failing_step(result)
    if step is not None:
        lines.append(f"  step {step.label} ({step.kind}): {step.status}")
        if step.error is not None:
            lines.append(f"    error: {step.error}")
        for check in step.checks:
            if not check.passed:
                lines.append(f"    {check.subject}: expected {check.expected}")
                lines.append(f"    {' ' * len(check.subject)}    actual {check.actual}")
        if step.logs:
            lines.append("  harness logs of the step:")
            lines.extend(f"    | {line}" for line in _tail(step.logs).splitlines())
    return "\n".join(lines)


def print_report(results: Sequence[ScenarioResult], console: Console) -> None:
    for result in results:
        if not result.passed:
            console.print(failure_details(result), markup=False, highlight=False)
    console.print(summary_table(results))


def _tail(text: str) -> str:
    return text if len(text) <= LOG_TAIL_CHARS else "...\n" + text[-LOG_TAIL_CHARS:]


def junit_xml(results: Sequence[ScenarioResult], suite: str = "scenarios") -> ET.ElementTree[ET.Element]:
    root = ET.Element(
        "testsuite",
        name=suite,
        tests=str(len(results)),
        failures=str(sum(result.status == "failed" for result in results)),
        errors=str(sum(result.status == "error" for result in results)),
        skipped="0",
        time=f"{sum(result.duration_s for result in results):.3f}",
    )
    for result in results:
        case = ET.SubElement(
            root,
            "testcase",
            classname=f"scenarios.{result.path.stem}",
            name=result.name,
            file=str(result.path),
            time=f"{result.duration_s:.3f}",
        )
        if result.status != "passed":
            tag = "failure" if result.status == "failed" else "error"
            problem = ET.SubElement(case, tag, message=_xml(first_problem(result)), type=f"scenario-{tag}")
            problem.text = _xml(failure_details(result))
            step = _failing_step(result)
            if step is not None and step.logs:
                ET.SubElement(case, "system-out").text = _xml(_tail(step.logs))
    return ET.ElementTree(root)


def _xml(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def write_junit(results: Sequence[ScenarioResult], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tree = junit_xml(results)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return path
