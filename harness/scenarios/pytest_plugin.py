"""A pytest plugin that collects scenario files as test items, so that `pytest scenarios/` replays them.

Each `*.yaml` file under a folder whose conftest imports these hooks (scenarios/conftest.py) becomes one
item named after its scenario, marked `slow` (and `docker` when its runtime is Docker). An invalid file
is a collection error that names the file, line and field. A failing scenario's report shows the
expected and actual values and the harness logs of the failing step.

Options: `--scenario-runtime` overrides every scenario's runtime (CI runs the set with `process`);
`--scenario-harness MODULE:FACTORY` names the harness factory (see harness/scenarios/binding.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.scenarios.binding import HarnessNotWired, resolve_harness_factory
from harness.scenarios.loader import SCENARIO_SUFFIXES, LoadedScenario, ScenarioLoadError, load_scenario
from harness.scenarios.replay import RunOptions, ScenarioResult, ScenarioRunner
from harness.scenarios.results import failure_details

RUNTIME_OPTION = "--scenario-runtime"
HARNESS_OPTION = "--scenario-harness"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("scenarios", "scenario replay (harness/scenarios)")
    group.addoption(
        RUNTIME_OPTION,
        choices=("docker", "process", "auto"),
        default=None,
        help="override every scenario's settings.runtime",
    )
    group.addoption(
        HARNESS_OPTION,
        default=None,
        metavar="MODULE:FACTORY",
        help="the harness factory (default: MLOPS_SCENARIO_HARNESS or the project's)",
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> ScenarioFile | None:
    if file_path.suffix in SCENARIO_SUFFIXES:
        file: ScenarioFile = ScenarioFile.from_parent(parent, path=file_path)
        return file
    return None


class ScenarioFile(pytest.File):
    def collect(self) -> list[pytest.Item]:
        try:
            loaded = load_scenario(self.path)
        except ScenarioLoadError as error:
            raise self.CollectError(str(error)) from None
        item = ScenarioItem.from_parent(self, name=loaded.scenario.name, loaded=loaded)
        item.add_marker(pytest.mark.slow)
        if (
            loaded.scenario.settings.runtime == "docker"
            and self.config.getoption(RUNTIME_OPTION, None) is None
        ):
            item.add_marker(pytest.mark.docker)
        return [item]


class ScenarioFailed(Exception):
    def __init__(self, result: ScenarioResult) -> None:
        super().__init__(result.name)
        self.result = result


class ScenarioItem(pytest.Item):
    def __init__(self, *, loaded: LoadedScenario, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loaded = loaded

    def runtest(self) -> None:
        factory = resolve_harness_factory(self.config.getoption(HARNESS_OPTION, None))
        options = RunOptions(runtime=self.config.getoption(RUNTIME_OPTION, None))
        result = ScenarioRunner(factory, options).run(self.loaded)
        self.user_properties.append(("duration_s", f"{result.duration_s:.1f}"))
        if not result.passed:
            raise ScenarioFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        if isinstance(excinfo.value, ScenarioFailed):
            return failure_details(excinfo.value.result)
        if isinstance(excinfo.value, HarnessNotWired):
            return f"{self.loaded.path}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario {self.name}"
