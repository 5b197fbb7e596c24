"""`scenario run` and `scenario list` as typer commands, registered on a local app as mlops/cli.py does."""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from harness.compute.training_cache import CACHE_DIR_ENV
from harness.scenarios import binding
from harness.scenarios.binding import HARNESS_ENV
from harness.scenarios.cli import SCENARIO_LIST_HELP, SCENARIO_RUN_HELP, scenario_list, scenario_run
from harness.scenarios.schedule import DurationRecord

FAKE = "tests.scenarios.fake_harness:open_fake"
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`scenario run` records durations beside the training cache: the test's own, not the user's."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_DIR_ENV, str(cache))
    return cache


def app() -> typer.Typer:
    root = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    scenario = typer.Typer(help="Replay scenarios.")
    scenario.command("run", help=SCENARIO_RUN_HELP)(scenario_run)
    scenario.command("list", help=SCENARIO_LIST_HELP)(scenario_list)
    root.add_typer(scenario, name="scenario")
    return root


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app(), list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def write(folder: Path, name: str, commit_expect_count: int) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        textwrap.dedent(f"""
        name: {name}
        description: one commit, {commit_expect_count} expected
        steps:
          - commit: {{}}
          - wait: {{pipeline: Succeeded, timeout_s: 10}}
            expect:
              - registry: {{count: {commit_expect_count}}}
    """)
    )
    return path


@pytest.fixture(autouse=True)
def no_harness_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HARNESS_ENV, raising=False)


def test_list_shows_names_descriptions_and_files() -> None:
    code, output = invoke("scenario", "list", str(SCENARIOS))
    assert code == 0
    for name in ("happy-commit", "bad-requests", "rerun-changes-nothing"):
        assert name in output
    assert "happy-commit.yaml" in output


def test_run_passes_and_writes_junit(tmp_path: Path) -> None:
    write(tmp_path, "good", 1)
    junit = tmp_path / "out" / "junit.xml"
    code, output = invoke(
        "scenario", "run", str(tmp_path), "--harness", FAKE, "--junit", str(junit), "--runtime", "process"
    )
    assert code == 0, output
    assert "passed  good" in output
    assert ET.parse(junit).getroot().get("tests") == "1"


def test_run_fails_with_expected_and_actual(tmp_path: Path) -> None:
    write(tmp_path, "good", 1)
    write(tmp_path, "wrong", 5)
    code, output = invoke("scenario", "run", str(tmp_path), "--harness", FAKE)
    assert code == 1
    assert "scenario wrong" in output and "registry.count: expected 5" in output and "actual 1" in output


def test_run_records_how_long_each_passed_scenario_took(tmp_path: Path, _own_cache: Path) -> None:
    """The record the next parallel run orders by (harness/scenarios/schedule.py); a failed scenario's
    time says nothing about a full run, so it is not recorded."""
    write(tmp_path, "good", 1)
    write(tmp_path, "wrong", 5)
    code, output = invoke("scenario", "run", str(tmp_path), "--harness", FAKE, "--parallel", "2")
    assert code == 1, output
    record = DurationRecord.beside(_own_cache).read()
    assert list(record) == ["good"] and record["good"] > 0


def test_run_takes_the_harness_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "good", 1)
    monkeypatch.setenv(HARNESS_ENV, FAKE)
    assert invoke("scenario", "run", str(tmp_path / "good.yaml"))[0] == 0


def test_run_without_a_harness_or_with_an_invalid_file_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "good", 1)
    monkeypatch.setattr(binding, "DEFAULT_HARNESS", None)  # the project's own adapter is the default
    code, output = invoke("scenario", "run", str(tmp_path))
    assert code == 2 and "no harness is wired" in output
    code, output = invoke(
        "scenario", "run", str(tmp_path), "--harness", "tests.scenarios.fake_harness:nothing"
    )
    assert code == 2 and "does not name a callable harness factory" in output
    (tmp_path / "broken.yaml").write_text("name: broken\ndescription: d\nsteps:\n  - comit: {}\n")
    code, output = invoke("scenario", "run", str(tmp_path), "--harness", FAKE)
    assert code == 2 and f"{tmp_path / 'broken.yaml'}:4:5: steps.0: a step must have exactly one of" in output


def test_run_help_lists_triggers_faults_and_expectations() -> None:
    code, output = invoke("scenario", "run", "--help")
    assert code == 0
    for text in (
        "STEPS",
        "s3_put",
        "FAULTS",
        "endpoint_unhealthy",
        "EXPECTATIONS",
        "intent_in_known_intents",
        "predicates: ['all_succeeded'",
    ):
        assert text in output, text


def test_shards_split_the_set_deterministically_and_cover_it_once(tmp_path: Path) -> None:
    names = ["delta", "alpha", "echo", "charlie", "bravo"]
    for name in names:
        write(tmp_path, name, 1)
    ran: list[list[str]] = []
    for index in (1, 2, 3):
        code, output = invoke("scenario", "run", str(tmp_path), "--harness", FAKE, "--shard", f"{index}/3")
        assert code == 0, output
        ran.append(sorted(name for name in names if f"passed  {name}" in output))
    # Sorted by name (alpha bravo charlie delta echo), dealt round-robin; each scenario exactly once.
    assert ran == [["alpha", "delta"], ["bravo", "echo"], ["charlie"]]
    # The same split again (another machine of the CI matrix sees the same shard).
    code, output = invoke("scenario", "run", str(tmp_path), "--harness", FAKE, "--shard", "2/3")
    assert sorted(name for name in names if f"passed  {name}" in output) == ["bravo", "echo"]


@pytest.mark.parametrize("shard", ["0/3", "4/3", "1/0", "two/3", "1-3"])
def test_a_bad_shard_is_a_usage_error(tmp_path: Path, shard: str) -> None:
    write(tmp_path, "good", 1)
    code, output = invoke("scenario", "run", str(tmp_path), "--harness", FAKE, "--shard", shard)
    assert code == 2 and "--shard" in output
