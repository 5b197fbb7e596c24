"""The state machine picture: the deployer's real ASL with a synthetic history (shaped as AWS's
GetExecutionHistory), and a small machine run for real by the emulator's Step Functions engine."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from harness.emulator import EmbeddedEmulator
from harness.report.statemachine import COLOURS, render_svg, state_graph, state_statuses

ASL_PATH = Path(__file__).resolve().parents[2] / "deployer" / "statemachine" / "training.asl.json"
NS = {"svg": "http://www.w3.org/2000/svg"}


def _history(*steps: tuple[str, str | None]) -> list[dict[str, Any]]:
    """Events as AWS names them: (type, state name or None)."""
    events = []
    for index, (kind, name) in enumerate(steps, start=1):
        event: dict[str, Any] = {"id": index, "type": kind, "timestamp": 1_700_000_000 + index}
        if name is not None and kind.endswith("Entered"):
            event["stateEnteredEventDetails"] = {"name": name}
        elif name is not None and kind.endswith("Exited"):
            event["stateExitedEventDetails"] = {"name": name}
        events.append(event)
    return events


def _boxes(svg: str) -> dict[str, tuple[str, str]]:
    """state -> (data-status, rect fill), read back from the SVG as XML."""
    root = ET.fromstring(svg)
    boxes = {}
    for group in root.iter(f"{{{NS['svg']}}}g"):
        if group.get("class") == "state":
            rect = group.find("svg:rect", NS)
            assert rect is not None
            boxes[group.get("data-state", "")] = (group.get("data-status", ""), rect.get("fill", ""))
    return boxes


def _entered_exited(name: str, state_type: str) -> list[tuple[str, str | None]]:
    return [(f"{state_type}StateEntered", name), (f"{state_type}StateExited", name)]


def test_a_failed_training_run_is_drawn_with_caught_and_failed_states() -> None:
    asl = json.loads(ASL_PATH.read_text())
    history = _history(
        ("ExecutionStarted", None),
        ("TaskStateEntered", "Train"),
        ("TaskScheduled", None),
        ("TaskFailed", None),
        ("FailStateEntered", "ExecutionFailed"),
        ("ExecutionFailed", None),
    )
    statuses = state_statuses(asl, history)
    boxes = _boxes(render_svg(asl, statuses))

    assert set(boxes) == set(asl["States"])  # every state drawn
    assert boxes["Train"] == ("caught", COLOURS["caught"][0])
    assert boxes["ExecutionFailed"] == ("failed", COLOURS["failed"][0])
    assert boxes["CreateModel"] == ("not_reached", COLOURS["not_reached"][0])
    assert boxes["Deployed"][0] == "not_reached"


def test_a_good_run_with_a_polling_loop_and_a_retry() -> None:
    asl = json.loads(ASL_PATH.read_text())
    steps: list[tuple[str, str | None]] = [("ExecutionStarted", None)]
    steps += [
        ("TaskStateEntered", "Train"),
        ("TaskFailed", None),
        ("TaskSucceeded", None),
        ("TaskStateExited", "Train"),
    ]
    for name, state_type in [
        ("HasMetrics", "Choice"),
        ("ReadMetrics", "Pass"),
        ("QualityGate", "Choice"),
        ("CreateModel", "Task"),
        ("CreateEndpointConfig", "Task"),
    ]:
        steps += _entered_exited(name, state_type)
    steps += [
        ("TaskStateEntered", "FindEndpoint"),
        ("TaskFailed", None),
        ("TaskStateEntered", "CreateEndpoint"),
    ]
    steps += [("TaskStateExited", "CreateEndpoint")]
    for _ in range(2):  # the poll loop: Wait -> Describe -> Choice -> Wait ...
        steps += _entered_exited("WaitForEndpoint", "Wait") + _entered_exited("DescribeEndpoint", "Task")
        steps += _entered_exited("EndpointReady", "Choice")
    steps += [
        ("SucceedStateEntered", "Deployed"),
        ("SucceedStateExited", "Deployed"),
        ("ExecutionSucceeded", None),
    ]
    statuses = state_statuses(asl, _history(*steps))

    assert statuses["Train"] == "succeeded"  # the error was retried away
    assert statuses["FindEndpoint"] == "caught"  # no endpoint yet: the Catch goes to CreateEndpoint
    assert statuses["CreateEndpoint"] == "succeeded" and statuses["UpdateEndpoint"] == "not_reached"
    assert statuses["Deployed"] == "succeeded" and statuses["ExecutionFailed"] == "not_reached"


def test_edges_follow_next_choices_default_and_catch() -> None:
    asl = json.loads(ASL_PATH.read_text())
    graph = state_graph(asl)
    edges = {(e.source, e.target, e.kind) for e in graph.edges}
    assert ("Train", "HasMetrics", "next") in edges
    assert ("Train", "ExecutionFailed", "catch") in edges
    assert ("QualityGate", "BelowThreshold", "default") in edges
    assert ("EndpointReady", "Deployed", "choice") in edges
    root = ET.fromstring(render_svg(asl, {}))
    drawn = {
        (g.get("data-source"), g.get("data-target"), g.get("data-kind"))
        for g in root.iter(f"{{{NS['svg']}}}g")
        if g.get("class") == "edge"
    }
    assert drawn == edges
    catch_paths = [
        g.find("svg:path", NS) for g in root.iter(f"{{{NS['svg']}}}g") if g.get("data-kind") == "catch"
    ]
    assert catch_paths and all(p is not None and p.get("stroke-dasharray") for p in catch_paths)


def test_the_picture_is_deterministic() -> None:
    asl = json.loads(ASL_PATH.read_text())
    assert render_svg(asl, {"Train": "failed"}) == render_svg(asl, {"Train": "failed"})


MACHINE = {
    "StartAt": "Prepare",
    "States": {
        "Prepare": {"Type": "Pass", "Next": "ReadMissing"},
        "ReadMissing": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:s3:getObject",
            "Parameters": {"Bucket": "no-such-bucket", "Key": "x"},
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Recover"}],
            "Next": "Done",
        },
        "Recover": {"Type": "Pass", "Next": "GiveUp"},
        "GiveUp": {"Type": "Fail", "Error": "Missing", "Cause": "the object is missing"},
        "Done": {"Type": "Succeed"},
    },
}


def test_a_real_history_from_the_emulators_step_functions() -> None:
    """The emulator's engine runs the machine; its real history is parsed (moto's event shapes)."""
    with EmbeddedEmulator() as emulator:
        sfn = emulator.client("stepfunctions")
        arn = sfn.create_state_machine(
            name="report-test", definition=json.dumps(MACHINE), roleArn="arn:aws:iam::123456789012:role/sfn"
        )["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=arn, name="run-1")["executionArn"]
        deadline = time.monotonic() + 30
        while sfn.describe_execution(executionArn=execution)["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the execution did not finish"
            time.sleep(0.1)
        history = sfn.get_execution_history(executionArn=execution)["events"]

    statuses = state_statuses(MACHINE, history)
    assert statuses == {
        "Prepare": "succeeded",
        "ReadMissing": "caught",
        "Recover": "succeeded",
        "GiveUp": "failed",
        "Done": "not_reached",
    }


def test_without_graphviz_the_report_says_so(monkeypatch: Any) -> None:
    """Where `dot` is not installed, render_svg raises GraphvizMissing (the writer draws a notice)."""
    import graphviz

    from harness.report.statemachine import GraphvizMissing, notice_svg

    def missing(*args: Any, **kwargs: Any) -> str:
        raise graphviz.ExecutableNotFound(["dot"])

    monkeypatch.setattr(graphviz.Digraph, "pipe", missing)
    asl = json.loads(ASL_PATH.read_text())
    try:
        render_svg(asl, {})
    except GraphvizMissing as error:
        assert "apt-get install graphviz" in str(error)
        assert "apt-get install graphviz" in notice_svg(str(error))
    else:
        raise AssertionError("render_svg drew without dot")
