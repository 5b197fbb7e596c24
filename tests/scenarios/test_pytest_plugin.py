"""The pytest plugin: scenario files become items; failures show expected vs actual; bad files error."""

from __future__ import annotations

import textwrap

import pytest

from harness.scenarios import binding

pytest_plugins = ["pytester"]

CONFTEST = """
from harness.scenarios.pytest_plugin import pytest_addoption, pytest_collect_file
"""
INI = """
[pytest]
markers =
    slow: slow
    docker: docker
"""
FAKE = "tests.scenarios.fake_harness:open_fake"


def scenario(name: str, count: int, runtime: str = "process") -> str:
    return textwrap.dedent(f"""
        name: {name}
        description: d
        settings: {{runtime: {runtime}}}
        steps:
          - commit: {{}}
          - wait: {{pipeline: Succeeded, timeout_s: 10}}
            expect:
              - registry: {{count: {count}}}
    """)


@pytest.fixture
def folder(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    return pytester


def test_scenario_files_are_collected_as_items_with_markers(folder: pytest.Pytester) -> None:
    folder.makefile(".yaml", good=scenario("good", 1), boxed=scenario("boxed", 1, "docker"))
    result = folder.runpytest("--collect-only", "-q", "-m", "slow and not docker")
    result.stdout.fnmatch_lines(["good.yaml::good", "*1/2 tests collected (1 deselected)*"])


def test_scenarios_run_and_a_failure_shows_expected_and_actual(folder: pytest.Pytester) -> None:
    folder.makefile(".yaml", good=scenario("good", 1), wrong=scenario("wrong", 3))
    result = folder.runpytest("--scenario-harness", FAKE, "--scenario-runtime", "process")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*step #2 wait (wait): failed*", "*registry.count: expected 3*", "*actual 1*"]
    )


def test_an_invalid_file_is_a_collection_error_with_file_line_and_field(folder: pytest.Pytester) -> None:
    folder.makefile(".yaml", broken="name: broken\ndescription: d\nsteps:\n  - commit: {files: [a]}\n")
    result = folder.runpytest("--scenario-harness", FAKE)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*broken.yaml:4:21: steps.0.commit.files: Input should be a valid dictionary*"]
    )


def test_without_a_harness_the_item_fails_saying_so(
    folder: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLOPS_SCENARIO_HARNESS", raising=False)
    monkeypatch.setattr(binding, "DEFAULT_HARNESS", None)  # the project's own adapter is the default
    folder.makefile(".yaml", good=scenario("good", 1))
    result = folder.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*good.yaml: no harness is wired to the scenario runner*"])
