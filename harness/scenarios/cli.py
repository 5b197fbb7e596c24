"""`mlops scenario run` and `mlops scenario list`: typer-ready functions (mlops/cli.py registers them).

Register with the help that lists the catalogue:

    scenario = typer.Typer(help="Replay scenarios against the local harness.")
    scenario.command("run", help=SCENARIO_RUN_HELP)(scenario_run)
    scenario.command("list", help=SCENARIO_LIST_HELP)(scenario_list)
    app.add_typer(scenario, name="scenario")

Exit codes: 0 every scenario passed; 1 a scenario failed (expected and actual values, and the harness
logs of the failing step, are printed); 2 a scenario file is invalid or no harness is wired.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.compute.training_cache import cache_home
from harness.scenarios.binding import HarnessNotWired, resolve_harness_factory
from harness.scenarios.catalogue import describe_catalogue
from harness.scenarios.loader import LoadedScenario, ScenarioLoadError, load_all
from harness.scenarios.replay import RunOptions, ScenarioResult, ScenarioRunner
from harness.scenarios.results import print_report, write_junit
from harness.scenarios.schedule import DurationRecord
from harness.scenarios.shard import Shard

DEFAULT_PATHS = [Path("scenarios")]
EXIT_FAILED = 1
EXIT_USAGE = 2


class RuntimeChoice(enum.StrEnum):
    docker = "docker"
    process = "process"
    auto = "auto"


class TimingChoice(enum.StrEnum):
    fast = "fast"
    aws = "aws"


def scenario_run(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Scenario files or folders (default: scenarios/).")
    ] = None,
    runtime: Annotated[
        RuntimeChoice | None, typer.Option(help="Override every scenario's settings.runtime.")
    ] = None,
    parallel: Annotated[int, typer.Option(min=1, help="Scenarios run at once, each in its own process.")] = 1,
    junit: Annotated[Path | None, typer.Option(help="Write a JUnit XML report to this file.")] = None,
    work_dir: Annotated[
        Path | None, typer.Option(help="Keep each scenario's harness state under this folder.")
    ] = None,
    harness: Annotated[
        str | None, typer.Option(help="The harness factory as MODULE:FACTORY (default: the project's).")
    ] = None,
    training_cache: Annotated[
        bool,
        typer.Option(
            "--training-cache/--no-training-cache",
            help="Reuse a training job's model when image, data and hyperparameters match (step caching).",
        ),
    ] = True,
    timing: Annotated[
        TimingChoice | None,
        typer.Option(help="Override every scenario's settings.timing (aws: AWS's provisioning times)."),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(help="Run only part I of N of the set (I/N: by name, round-robin), for a CI matrix."),
    ] = None,
) -> None:
    """Run scenarios, each in a fresh harness; exit non-zero when an expectation fails."""
    console = Console(stderr=False)
    loaded = _load(paths, console)
    if shard is not None:
        try:
            part = Shard.parse(shard)
        except ValueError as error:
            console.print(f"error: --shard: {error}", markup=False)
            raise typer.Exit(EXIT_USAGE) from None
        loaded = part.select(loaded)
        console.print(
            f"shard {part}: {', '.join(item.scenario.name for item in loaded) or 'nothing'}", markup=False
        )
        if not loaded:
            return
    try:
        factory = resolve_harness_factory(harness)
    except HarnessNotWired as error:
        console.print(f"error: {error}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    options = RunOptions(
        runtime=runtime.value if runtime else None,
        work_root=work_dir,
        training_cache=training_cache,
        timing=timing.value if timing else None,
    )
    console.print(f"{len(loaded)} scenario(s), {parallel} at a time", markup=False)
    results = ScenarioRunner(factory, options).run_all(
        loaded,
        parallel=parallel,
        on_result=lambda result: _progress(console, result),
        durations=DurationRecord.beside(cache_home()),
    )
    print_report(results, console)
    if junit is not None:
        console.print(f"JUnit report: {write_junit(results, junit)}", markup=False)
    if not all(result.passed for result in results):
        raise typer.Exit(EXIT_FAILED)


def scenario_list(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Scenario files or folders (default: scenarios/).")
    ] = None,
) -> None:
    """List scenarios: name, description and file (every file is validated on the way)."""
    console = Console()
    table = Table(title="Scenarios")
    table.add_column("name")
    table.add_column("description", overflow="fold")
    table.add_column("file")
    for item in _load(paths, console):
        table.add_row(item.scenario.name, item.scenario.description.strip(), str(item.path))
    console.print(table)


def _progress(console: Console, result: ScenarioResult) -> None:
    console.print(
        f"{result.status:>6}  {result.name}  ({result.duration_s:.1f} s)", markup=False, highlight=False
    )


def _load(paths: list[Path] | None, console: Console) -> list[LoadedScenario]:
    try:
        loaded = load_all(paths or DEFAULT_PATHS)
    except ScenarioLoadError as error:
        console.print(str(error), markup=False, highlight=False)
        raise typer.Exit(EXIT_USAGE) from None
    if not loaded:
        console.print("no scenario files found", markup=False)
        raise typer.Exit(EXIT_USAGE)
    return loaded


# typer renders help with rich markup: escape the catalogue's brackets (`[int]`) so they are shown as text.
SCENARIO_RUN_HELP = escape(f"{scenario_run.__doc__}\n\n{describe_catalogue()}")
SCENARIO_LIST_HELP = scenario_list.__doc__
