"""The runner against a scripted stand-in harness (tests/scenarios/fake_harness.py says why a stand-in).

The stand-in's API is a real HTTP server, so requests, concurrency and background sending are real.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

from harness.scenarios.loader import LoadedScenario, load_all, parse_scenario
from harness.scenarios.replay import RunOptions, ScenarioRunner, harness_settings
from harness.scenarios.results import first_problem
from tests.scenarios.fake_harness import open_broken, open_fake

FAST = RunOptions(poll_interval_s=0.01)
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def scenario(text: str, folder: Path | None = None) -> LoadedScenario:
    path = (folder or Path("scenarios")) / "inline.yaml"
    return LoadedScenario(parse_scenario(textwrap.dedent(text), path), path)


def test_a_passing_scenario_runs_every_step_and_checks_every_expectation() -> None:
    result = ScenarioRunner(open_fake, FAST).run(
        scenario("""
        name: happy
        description: d
        steps:
          - name: first
            commit: {hyperparameters: {epochs: 3}}
          - wait: {pipeline: Succeeded, timeout_s: 10}
            expect:
              - pipeline: {stages: {Train: Succeeded, PublishApi: Succeeded}}
              - registry: {count: 1, consistent: true,
                           latest: {CommitId: {equals_commit_of: first}, Hyperparameters.epochs: "3"}}
              - endpoint: {status: InService}
          - requests: {json: {inputs: ["a", "b"]}, repeat: 4, concurrency: 2}
            expect:
              - http: {status: 200, predicates: [all_succeeded, one_prediction_per_input]}
              - time: {within_s: 5}
    """)
    )
    assert result.passed, result.steps
    assert [step.status for step in result.steps] == ["passed", "passed", "passed"]
    assert [step.label for step in result.steps] == ["first", "#2 wait", "#3 requests"]
    checks = [check.subject for check in result.steps[2].checks]
    assert checks == ["http.status", "http.all_succeeded", "http.one_prediction_per_input", "time.step"]
    assert result.steps[2].checks[0].actual == "all 4 answers"


def test_a_failed_expectation_ends_the_scenario_with_the_step_logs() -> None:
    result = ScenarioRunner(open_fake, FAST).run(
        scenario("""
        name: stops
        description: d
        steps:
          - commit: {}
          - wait: {pipeline: Succeeded, timeout_s: 10}
            expect:
              - registry: {count: 2}
          - requests: {json: {inputs: q}}
    """)
    )
    assert result.status == "failed"
    assert [step.status for step in result.steps] == ["passed", "failed", "skipped"]
    (check,) = [check for check in result.steps[1].checks if not check.passed]
    assert (check.subject, check.expected, check.actual) == ("registry.count", "2", "1")
    assert result.steps[0].logs == ""  # only the failing step carries logs


def test_a_wait_fails_at_once_when_the_run_ends_in_another_status() -> None:
    started = time.monotonic()
    result = ScenarioRunner(open_fake, FAST).run(
        scenario("""
        name: fails-fast
        description: d
        steps:
          - fault: {kind: training_fails, reason: "out of memory"}
          - commit: {}
          - wait: {pipeline: Succeeded, timeout_s: 60}
    """)
    )
    assert time.monotonic() - started < 10
    wait = result.steps[2]
    assert wait.status == "failed"
    assert [(c.subject, c.expected, c.actual) for c in wait.checks] == [
        ("wait.pipeline", "Succeeded", "Failed")
    ]
    assert "stage Train failed: out of memory" in wait.logs


def test_a_wait_that_times_out_is_an_error_that_shows_the_state() -> None:
    result = ScenarioRunner(open_fake, FAST).run(
        scenario("""
        name: times-out
        description: d
        steps:
          - wait: {approval: pending, timeout_s: 0.3}
    """)
    )
    assert result.status == "error"
    assert result.steps[0].error == "StepError: timed out after 0.3 s waiting: no approval is pending"


def test_waits_follow_the_run_each_trigger_started() -> None:
    result = ScenarioRunner(open_fake, FAST).run(
        scenario("""
        name: second-run
        description: d
        settings: {approval: scenario}
        steps:
          - commit: {}
          - wait: {approval: pending, timeout_s: 5}
          - approval: {decision: approve, comment: ok}
          - name: first
            wait: {pipeline: Succeeded, timeout_s: 5}
          - commit: {hyperparameters: {seed: 2}}
          - wait: {approval: pending, timeout_s: 5}
          - approval: {decision: reject, comment: "no"}
          - wait: {pipeline: finished, timeout_s: 5}
            expect:
              - pipeline: {count: 2, status: Failed, failed_stage: Approve, stages: {Register: NotRun}}
              - registry: {unchanged_since: first, count: 1, latest: {ApprovalComment: ok}}
    """)
    )
    assert result.passed, [step.checks for step in result.steps]


def test_requests_during_a_later_step_are_checked_when_it_ends() -> None:
    result = ScenarioRunner(open_fake, FAST).run(
        scenario("""
        name: during
        description: d
        steps:
          - commit: {}
          - wait: {pipeline: Succeeded, timeout_s: 5}
          - requests: {json: {inputs: q}, repeat: 15, concurrency: 3, during: swapped}
            expect:
              - http: {status: 200, predicates: [all_succeeded]}
          - commit: {hyperparameters: {seed: 4}}
          - name: swapped
            wait: {pipeline: Succeeded, timeout_s: 5}
    """)
    )
    assert result.passed, result.steps
    background = result.steps[2]
    assert background.status == "passed"
    sent = int(background.checks[0].actual.split()[1])  # "all N answers"
    assert sent >= 15


def test_a_step_the_harness_cannot_carry_out_is_an_error() -> None:
    result = ScenarioRunner(open_fake, FAST).run(
        scenario("""
        name: no-api
        description: d
        steps:
          - requests: {json: {inputs: q}}
    """)
    )
    assert result.status == "error"
    assert result.steps[0].error == "RuntimeError: no API has been published"


def test_a_harness_that_cannot_start_is_reported_not_raised() -> None:
    result = ScenarioRunner(open_broken, FAST).run(
        scenario("""
        name: broken
        description: d
        steps:
          - commit: {}
    """)
    )
    assert result.status == "error"
    assert result.error == "RuntimeError: the emulator did not start"
    assert result.steps[0].status == "skipped"


def test_settings_for_the_harness_and_the_runtime_override(tmp_path: Path) -> None:
    (tmp_path / "mine.csv").write_text("Query,Intent\nq,i\n")
    loaded = scenario(
        """
        name: settings
        description: d
        settings: {runtime: docker, data: mine.csv, hyperparameters: {epochs: 2}, approval: reject}
        steps:
          - commit: {}
    """,
        tmp_path,
    )
    settings = harness_settings(loaded.scenario, tmp_path, None)
    assert settings.runtime == "docker"
    assert settings.data == tmp_path / "mine.csv"
    assert dict(settings.hyperparameters) == {"epochs": 2}
    assert settings.approval == "reject"
    assert harness_settings(loaded.scenario, tmp_path, "process").runtime == "process"


def test_independent_scenarios_run_in_parallel_processes(tmp_path: Path) -> None:
    text = """
        name: {name}
        description: d
        steps:
          - commit: {{}}
          - wait: {{pipeline: Succeeded, timeout_s: 10}}
            expect:
              - registry: {{count: 1}}
    """
    loaded = [scenario(text.format(name=name)) for name in ("one", "two", "three")]
    seen: list[str] = []
    results = ScenarioRunner(open_fake, RunOptions(poll_interval_s=0.01, work_root=tmp_path)).run_all(
        loaded, parallel=2, on_result=lambda result: seen.append(result.name)
    )
    assert sorted(seen) == ["one", "three", "two"]
    assert [(result.name, result.status) for result in results] == [
        ("one", "passed"),
        ("two", "passed"),
        ("three", "passed"),
    ]
    assert sorted(path.name.split("-")[0] for path in tmp_path.iterdir()) == ["one", "three", "two"]


def test_the_scenario_set_is_coherent_against_the_stand_in() -> None:
    """Every file's triggers, waits, references and requests work with the runner (not the real system:
    the stand-in scripts the outcomes; the real harness replays these files in CI)."""
    results = ScenarioRunner(open_fake, FAST).run_all(load_all([SCENARIOS]))
    assert len(results) == len(list(SCENARIOS.glob("*.yaml")))
    assert {result.name: first_problem(result) for result in results if not result.passed} == {}
