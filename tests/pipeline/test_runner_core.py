"""The runner's own rules, with small local executors (plain functions: the executor contract)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from harness.pipeline.artifacts import ArtifactStore, unzip, zip_tree
from harness.pipeline.definition import Action, ActionType, Pipeline, Stage
from harness.pipeline.model import ActionContext, ActionFailed, ActionOutput, PipelineEvent
from harness.pipeline.runner import PipelineRunner, substitute_variables

BUILD = ActionType("Build", "AWS", "Local")


def _pipeline(*stages: Stage) -> Pipeline:
    return Pipeline("core", stages, "bucket")


def test_run_order_groups_variables_and_a_failure_stopping_the_stage(tmp_path: Path) -> None:
    calls: list[str] = []

    def executor(context: ActionContext) -> ActionOutput:
        calls.append(f"{context.action.name}:{context.configuration.get('Value', '')}")
        if context.action.name == "Breaks":
            raise ActionFailed("broke on purpose")
        return ActionOutput(variables={"Out": context.action.name})

    stage = Stage(
        "Only",
        (
            Action("Second", BUILD, {"Value": "#{First.Out}"}, run_order=2),
            Action("First", BUILD, {}, run_order=1, namespace="First"),
            Action("Breaks", BUILD, {}, run_order=2),
            Action("Never", BUILD, {}, run_order=3),
        ),
    )
    after = Stage("After", (Action("Later", BUILD, {}),))
    events: list[PipelineEvent] = []
    runner = PipelineRunner(
        _pipeline(stage, after),
        {BUILD.key: executor},
        ArtifactStore(tmp_path, "b", "core"),
        tmp_path,
        events.append,
    )
    result = runner.run(execution_id="exec-fixed")

    # Run order 1, then both of run order 2 (the failure waits for its group), never run order 3.
    assert calls == ["First:", "Second:First", "Breaks:"]
    assert result.execution_id == "exec-fixed"
    assert result.status == "Failed" and result.failed_stage == "Only" and result.failed_action == "Breaks"
    assert result.reason == "broke on purpose"
    assert [s.name for s in result.stages] == ["Only"]
    finished = [e for e in events if e.kind == "action-finished"]
    assert [(e.action, e.status) for e in finished] == [
        ("First", "Succeeded"),
        ("Second", "Succeeded"),
        ("Breaks", "Failed"),
    ]


def test_unknown_variables_and_executor_bugs_fail_the_action(tmp_path: Path) -> None:
    def buggy(context: ActionContext) -> ActionOutput:
        raise KeyError("oops")

    store = ArtifactStore(tmp_path, "b", "core")
    unknown = _pipeline(Stage("S", (Action("A", BUILD, {"X": "#{Nope.Var}"}),)))
    result = PipelineRunner(unknown, {BUILD.key: buggy}, store, tmp_path).run()
    assert result.reason is not None and "#{Nope.Var}" in result.reason

    bug = _pipeline(Stage("S", (Action("A", BUILD, {}),)))
    result = PipelineRunner(bug, {BUILD.key: buggy}, store, tmp_path).run()
    assert result.reason == "internal error in the Build/Local executor: KeyError: 'oops'"


def test_a_missing_output_artifact_fails_the_action_and_a_broken_sink_does_not(tmp_path: Path) -> None:
    def no_artifact(context: ActionContext) -> ActionOutput:
        return ActionOutput()

    def sink(event: PipelineEvent) -> None:
        raise RuntimeError("display broke")

    pipeline = _pipeline(Stage("S", (Action("A", BUILD, {}, output_artifacts=("Out",)),)))
    result = PipelineRunner(
        pipeline, {BUILD.key: no_artifact}, ArtifactStore(tmp_path, "b", "core"), tmp_path, sink
    ).run()
    assert result.reason == "the action produced no output artifact ['Out']"


def test_substitute_variables() -> None:
    variables = {"codepipeline": {"PipelineExecutionId": "e-1"}, "Src": {"CommitId": "abc"}}
    assert substitute_variables("#{Src.CommitId}@#{codepipeline.PipelineExecutionId}", variables) == "abc@e-1"
    assert substitute_variables("no variables #{ here", variables) == "no variables #{ here"


def test_zips_are_deterministic_and_keep_modes(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "run.sh").write_text("#!/bin/sh\n")
    (tree / "sub" / "run.sh").chmod(0o755)
    (tree / "a.txt").write_text("a")
    first = zip_tree(tree, tmp_path / "one.zip")
    (tree / "a.txt").touch()  # a new mtime changes nothing
    second = zip_tree(tree, tmp_path / "two.zip")
    assert first.read_bytes() == second.read_bytes()
    out = unzip(first, tmp_path / "out")
    assert (out / "sub" / "run.sh").stat().st_mode & 0o111
    assert (out / "a.txt").read_text() == "a"


def test_unzip_refuses_entries_that_escape(tmp_path: Path) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../outside.txt", "x")
    with pytest.raises(ValueError, match="escapes the destination"):
        unzip(evil, tmp_path / "dest")
    store = ArtifactStore(tmp_path / "store", "b", "core")
    (tmp_path / "not.zip").write_text("plain")
    with pytest.raises(ValueError, match="not a zip file"):
        store.put("e", "Out", tmp_path / "not.zip")


def test_progress_lines(tmp_path: Path) -> None:
    from harness.pipeline.progress import ProgressPrinter

    def executor(context: ActionContext) -> ActionOutput:
        context.progress("step one")
        raise ActionFailed("no luck")

    lines: list[str] = []
    pipeline = _pipeline(Stage("Build", (Action("Image", BUILD, {}),)))
    store = ArtifactStore(tmp_path, "b", "core")
    PipelineRunner(
        pipeline, {BUILD.key: executor}, store, tmp_path, ProgressPrinter(lines.append, verbose=True)
    ).run(execution_id="e-9")
    text = [line.split("] ", 1)[1] for line in lines]
    assert text[0] == "pipeline core execution e-9"
    assert text[1] == "Build ..."
    assert text[2] == "  Build/Image | step one"
    assert text[3].startswith("  Build/Image Failed (") and text[3].endswith("): no luck")
    assert text[4].startswith("Build Failed (")
    assert text[5].startswith("pipeline Failed (") and text[5].endswith(": no luck")
