"""The loader: valid files load; broken ones fail with the file, line and field of every error."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.scenarios.loader import ScenarioLoadError, discover, load_all, load_scenario
from harness.scenarios.schema import CommitStep, RequestsStep, WaitPipeline, WaitStep


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioLoadError) as caught:
        load_scenario(path)
    return [str(problem) for problem in caught.value.problems]


GOOD = """
name: good
description: a commit and a wait
settings: {runtime: process, hyperparameters: {epochs: 2}}
steps:
  - name: first
    commit: {files: {"a.txt": "x"}, hyperparameters: {seed: 3}}
  - wait: {pipeline: Succeeded, timeout_s: 30}
    expect:
      - registry: {count: 1, latest: {CommitId: {equals_commit_of: first}}}
"""


def test_a_valid_file_loads_into_typed_steps(tmp_path: Path) -> None:
    loaded = load_scenario(write(tmp_path, "good.yaml", GOOD))
    scenario = loaded.scenario
    assert scenario.settings.runtime == "process"
    assert scenario.settings.hyperparameters.given() == {"epochs": 2}
    first, second = scenario.steps
    assert isinstance(first, CommitStep) and first.commit.files == {"a.txt": "x"}
    assert first.commit.hyperparameters.given() == {"seed": 3}
    assert isinstance(second, WaitStep) and isinstance(second.wait, WaitPipeline)
    assert second.wait.timeout_s == 30


def test_unknown_key_points_at_the_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "unknown.yaml",
        """
        name: unknown
        description: d
        settings:
          runtime: process
          runtme: docker
        steps:
          - commit: {}
    """,
    )
    assert problems(path) == [f"{path}:5:3: settings.runtme: Extra inputs are not permitted"]


def test_wrong_type_names_the_field_and_the_value(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "wrong-type.yaml",
        """
        name: wrong-type
        description: d
        steps:
          - commit:
              files:
                app.py: 3
          - wait: {pipeline: Succeeded, timeout_s: "soon"}
    """,
    )
    found = problems(path)
    assert found[0] == f"{path}:6:17: steps.0.commit.files.app.py: Input should be a valid string (got 3)"
    assert found[1].startswith(f"{path}:7:44: steps.1.wait.timeout_s: Input should be a valid number")


def test_missing_trigger_field_points_at_the_mapping_that_lacks_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "missing.yaml",
        """
        name: missing
        description: d
        steps:
          - s3_put:
              file: data.csv
    """,
    )
    (tmp_path / "data.csv").write_text("Query,Intent\nq,i\n")
    assert problems(path) == [f"{path}:5:7: steps.0.s3_put.key: Field required"]


def test_two_kinds_in_one_step_names_both(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "two-kinds.yaml",
        """
        name: two-kinds
        description: d
        steps:
          - commit: {}
          - commit: {}
            approval: {decision: approve}
    """,
    )
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:5:5: steps.1: a step must have exactly one of: commit, s3_put")
    assert problem.endswith("found commit and approval")


def test_a_step_without_a_kind_lists_what_it_found(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "no-kind.yaml",
        """
        name: no-kind
        description: d
        steps:
          - comit: {}
    """,
    )
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:4:5: steps.0: a step must have exactly one of")
    assert problem.endswith("found only comit")


def test_errors_inside_a_fault_and_an_expectation_name_their_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "nested.yaml",
        """
        name: nested
        description: d
        steps:
          - fault: {kind: lambda_raises, function: train-everything}
          - fault: {kind: melt_down}
          - wait: {execution: FAILED}
            expect:
              - execution: {status: FAILD}
              - pipline: {status: Failed}
    """,
    )
    found = problems(path)
    assert found[0].startswith(f"{path}:4:44: steps.0.fault.function: Input should be 'start-training'")
    assert found[1].startswith(f"{path}:5:19: steps.1.fault.kind: Input tag 'melt_down' found using 'kind'")
    assert found[2].startswith(f"{path}:8:29: steps.2.expect.0.execution.status: Input should be 'RUNNING'")
    assert found[3].startswith(f"{path}:9:9: steps.2.expect.1: an expectation must have exactly one of")


def test_cross_step_rules_point_at_the_offending_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "references.yaml",
        """
        name: references
        description: d
        steps:
          - name: first
            commit: {}
          - requests: {json: {inputs: q}, during: first}
          - approval: {decision: approve}
          - wait: {pipeline: Succeeded}
            expect:
              - http: {status: 200}
              - endpoint: {config_changed_since: later}
              - registry: {latest: {CommitId: {equals_commit_of: nobody}}}
          - name: later
            commit: {}
          - name: first
            rerun: {}
    """,
    )
    assert problems(path) == [
        f"{path}:6:43: steps.1.requests.during: during must name a later step, but 'first' is not later",
        f"{path}:7:15: steps.2.approval: an approval step needs settings.approval: scenario (it is 'auto')",
        f"{path}:10:15: steps.3.expect.0.http: http expectations belong to a requests step",
        f"{path}:11:42: steps.3.expect.1.endpoint.config_changed_since: config_changed_since must name this "
        "step or an earlier one, but 'later' comes later",
        f"{path}:12:58: steps.3.expect.2.registry.latest.CommitId.equals_commit_of: no commit step is "
        "named 'nobody'",
        f"{path}:15:11: steps.5.name: step name 'first' is already used by step 1",
    ]


def test_a_missing_data_file_is_named_with_its_resolved_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "data.yaml",
        """
        name: data
        description: d
        settings: {data: nowhere.csv}
        steps:
          - s3_put: {key: k.csv, file: gone.csv, text: "also this"}
    """,
    )
    found = problems(path)
    assert found[0] == f"{path}:3:18: settings.data: data file {tmp_path / 'nowhere.csv'} does not exist"
    assert found[1] == f"{path}:5:32: steps.0.s3_put.file: file {tmp_path / 'gone.csv'} does not exist"


def test_a_relative_data_file_is_resolved_against_the_scenario_file(tmp_path: Path) -> None:
    (tmp_path / "sets").mkdir()
    (tmp_path / "sets" / "mine.csv").write_text("Query,Intent\nq,i\n")
    path = write(
        tmp_path,
        "relative.yaml",
        """
        name: relative
        description: d
        settings: {data: sets/mine.csv}
        steps:
          - commit: {}
    """,
    )
    assert load_scenario(path).scenario.settings.data == str(tmp_path / "sets" / "mine.csv")


def test_two_bodies_in_one_request_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bodies.yaml",
        """
        name: bodies
        description: d
        steps:
          - requests: {json: {inputs: q}, text: "raw"}
    """,
    )
    assert problems(path) == [
        f"{path}:4:15: steps.0.requests: a request has at most one body; found json and text"
    ]


def test_strict_types_refuse_coercion(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "strict.yaml",
        """
        name: strict
        description: d
        settings: {hyperparameters: {epochs: "8", learning_rate: 2}}
        steps:
          - commit: {}
    """,
    )
    found = problems(path)
    assert (
        found[0] == f"{path}:3:38: settings.hyperparameters.epochs: Input should be a valid integer (got '8')"
    )
    assert found[1] == (
        f"{path}:3:58: settings.hyperparameters.learning_rate: "
        "Input should be less than or equal to 1 (got 2)"
    )


def test_out_of_range_hyperparameters_follow_the_container(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "range.yaml",
        """
        name: range
        description: d
        settings: {hyperparameters: {max_length: 8, model_preset: huge}}
        steps:
          - commit: {}
    """,
    )
    found = problems(path)
    assert found == [
        f"{path}:3:42: settings.hyperparameters.max_length: "
        "Input should be greater than or equal to 16 (got 8)",
        f"{path}:3:59: settings.hyperparameters.model_preset: Input should be 'tiny' or '125m' (got 'huge')",
    ]


def test_yaml_syntax_errors_and_duplicate_keys_are_located(tmp_path: Path) -> None:
    syntax = write(tmp_path, "syntax.yaml", "name: x\nsteps: [\n  - commit: {}\n")
    (problem,) = problems(syntax)
    assert problem == f"{syntax}:3:3: invalid YAML: expected the node content, but found '-'"
    duplicate = write(
        tmp_path,
        "duplicate.yaml",
        """
        name: duplicate
        description: d
        steps:
          - commit: {}
            name: a
            name: b
    """,
    )
    assert problems(duplicate) == [f"{duplicate}:6:5: steps.0.name: duplicate key"]


def test_a_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "list.yaml", "- commit: {}\n")
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:1:1: Input should be a valid dictionary")


def test_load_all_expands_folders_reports_every_file_and_refuses_duplicate_names(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yml", GOOD)
    write(tmp_path, "c.yaml", "name: c\n")
    (tmp_path / "notes.txt").write_text("not a scenario")
    assert [path.name for path in discover([tmp_path])] == ["a.yaml", "b.yml", "c.yaml"]
    with pytest.raises(ScenarioLoadError) as caught:
        load_all([tmp_path])
    messages = [str(problem) for problem in caught.value.problems]
    assert f"{tmp_path / 'c.yaml'}:1:1: description: Field required" in messages
    assert (
        f"{tmp_path / 'b.yml'}:1:1: name: scenario name 'good' is also used by {tmp_path / 'a.yaml'}"
        in messages
    )
    with pytest.raises(ScenarioLoadError, match="no such file or folder"):
        discover([tmp_path / "absent.yaml"])


def test_request_step_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "defaults.yaml",
        """
        name: defaults
        description: d
        steps:
          - requests: {json: null}
    """,
    )
    step = load_scenario(path).scenario.steps[0]
    assert isinstance(step, RequestsStep)
    assert (step.requests.method, step.requests.path, step.requests.key) == ("POST", "/predict", "default")
    assert step.requests.body_kinds() == ["json"]  # an explicit null is the JSON body `null`


def test_an_expectation_that_states_nothing_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "empty.yaml",
        """
        name: empty
        description: d
        steps:
          - commit: {}
            expect:
              - pipeline: {which: all}
    """,
    )
    assert problems(path) == [
        f"{path}:6:19: steps.0.expect.0.pipeline: an expectation needs at least one of: "
        "count, status, stages, failed_stage, reason_contains"
    ]
