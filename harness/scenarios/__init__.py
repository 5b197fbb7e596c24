"""Scenarios: replayable triggers, faults and expectations, run against a fresh harness each.

Modules: `schema` (the file format), `loader` (YAML to a validated scenario, errors with file:line and
field), `catalogue` (the listing `--help` prints), `interface` (what the runner needs from the harness),
`checks` (pure expectation checks), `replay` (steps in order, waits, background requests, parallel
scenarios), `results` (summary table, JUnit XML), `binding` (which harness factory runs them), `adapter` (the
harness over the real stack, with `source_repository` and `failure_origin`), `cli`
(typer commands) and `pytest_plugin` (scenario files as pytest items).
"""

from harness.scenarios.catalogue import describe_catalogue
from harness.scenarios.interface import HarnessFactory, HarnessSettings, Observation, ScenarioHarness
from harness.scenarios.loader import LoadedScenario, ScenarioLoadError, load_all, load_scenario
from harness.scenarios.replay import RunOptions, ScenarioResult, ScenarioRunner
from harness.scenarios.schema import Scenario

__all__ = [
    "HarnessFactory",
    "HarnessSettings",
    "LoadedScenario",
    "Observation",
    "RunOptions",
    "Scenario",
    "ScenarioHarness",
    "ScenarioLoadError",
    "ScenarioResult",
    "ScenarioRunner",
    "describe_catalogue",
    "load_all",
    "load_scenario",
]
