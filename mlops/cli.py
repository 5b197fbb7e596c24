"""The `mlops` command: one explicit table of the parts' commands (no discovery magic).

Each part owns its commands in its own module; this module only registers them.
"""

from __future__ import annotations

import typer

from deployer import cli as deployer_cli
from harness.scenarios.cli import SCENARIO_LIST_HELP, SCENARIO_RUN_HELP, scenario_list, scenario_run
from mlops import demo, run_commands

app = typer.Typer(
    name="mlops",
    help="Build, test locally and deploy a bring-your-own-container GPT-Neo intent model on AWS.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("run")(run_commands.run)
app.command("up")(run_commands.up)
app.command("approve")(run_commands.approve)
app.command("reject")(run_commands.reject)
app.add_typer(run_commands.trigger_app, name="trigger")
app.command("demo", help=demo.demo.__doc__)(demo.demo)
app.command("plan")(deployer_cli.plan)
app.command("deploy")(deployer_cli.deploy)
app.command("destroy")(deployer_cli.destroy)
app.command("check-iam")(deployer_cli.check_iam)

scenario = typer.Typer(help="Replay scenarios (triggers, faults, expectations) against the local harness.")
scenario.command("run", help=SCENARIO_RUN_HELP)(scenario_run)
scenario.command("list", help=SCENARIO_LIST_HELP)(scenario_list)
app.add_typer(scenario, name="scenario")


def main() -> None:  # pragma: no cover - console entry point
    app()
