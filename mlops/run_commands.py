"""`mlops run`, `mlops up`, `mlops approve` / `reject` and `mlops trigger`: the full flow, locally.

- `run`: a commit in, a working HTTP API out (harness/flow.py), then the stack stops. Progress goes
  to stdout (to stderr with `--json`, whose one JSON summary is then stdout's only and last line).
- `up`: the same run, then the stack stays up (emulator endpoint for `aws --endpoint-url`, API URL
  and key printed) and serves triggers until Ctrl-C.
- `approve` / `reject`: decide the approval a `run --approval wait` or `up --approval wait` waits for,
  with CodePipeline's PutApprovalResult against the stack's emulator (the token from GetPipelineState),
  as AWS's console and `aws codepipeline put-approval-result` do.
- `run --console` / `up --console` / `up --open`: serve the local console (mlops/console) while the
  stack runs and print its URL (`--open` also opens a browser where one exists).
- `trigger commit [--source PATH] [--ref REF]` / `trigger data CSV`: a new pipeline run on a commit,
  or new training data (the S3 -> EventBridge path), against a running `up`.

Every command takes `--work-dir` (default `<tmp>/mlops`): the folder of the stack's files and of its
control channel (harness/control.py), so the commands find each other through it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import typer

from harness.control import ControlChannel, ControlError, StackInfo, TriggerRequest
from harness.flow import LocalFlow, run_once
from harness.flow_model import APPROVALS, REPO_ROOT, RUNTIMES, FlowError, FlowOptions, FlowSummary
from harness.identity import REGION
from harness.inputs import training_and_queries
from harness.pipeline import PipelineEvent, ProgressPrinter
from harness.timing import PROFILE_NAMES
from mlops.console.aws import AwsError, StackView
from mlops.console.server import ConsoleServer

DEFAULT_WORK_DIR = Path(tempfile.gettempdir()) / "mlops"

_WORK_DIR = typer.Option(DEFAULT_WORK_DIR, "--work-dir", help="The stack's files and control channel.")
_RUNTIME = typer.Option(
    "auto",
    "--runtime",
    help="docker | process | auto (docker when an engine answers and the base image exists, else process).",
)
_DATA = typer.Option(None, "--data", help="Training data: a Query,Intent CSV (default: CLINC150 clinc10).")
_QUERIES = typer.Option(
    None,
    "--queries",
    help="CSV of sample queries (Query, optionally Intent) sent "
    "to the API at the end (default: a few held-out rows of the data).",
)
_APPROVAL = typer.Option("auto", "--approval", help="auto | prompt (ask here) | wait (`mlops approve`).")
_REPORT_DIR = typer.Option(None, "--report-dir", help="The run report's folder (default <work-dir>/report).")
_TIME_SCALE = typer.Option(0.01, "--time-scale", help="Multiplies Step Functions' waits and polls.")
_TIMING = typer.Option(
    "fast",
    "--timing",
    help="fast: nothing added; aws: AWS's provisioning times "
    "(training, endpoints, CodeBuild, Lambda cold starts) at --time-scale.",
)
_SOURCE = typer.Option(REPO_ROOT, "--source", help="The git repository the Source stage commits.")
_REF = typer.Option(None, "--ref", help="A ref to build (default: the working tree as a commit).")
_API_BATCH = typer.Option(
    64,
    "--api-batch-size",
    min=1,
    max=64,
    help="Queries per API request at the end "
    "(the API takes up to 64; throttled requests are retried with backoff).",
)
_TRAINING_CACHE = typer.Option(
    True,
    "--training-cache/--no-training-cache",
    help="Reuse an earlier training job's model when image digest, data and hyperparameters match.",
)
_IAM = typer.Option(
    True,
    "--iam/--no-iam",
    help="Enforce IAM: each principal acts with its role's "
    "policies, as on AWS (--no-iam: every call runs with full rights).",
)
_CONSOLE = typer.Option(False, "--console", help="Serve the local console while the stack runs.")
_CONSOLE_PORT = typer.Option(0, "--console-port", help="The console's loopback port (0: a free one).")


def _quiet() -> None:
    """Known, expected noise stays out of the terminal: moto's notes on resource types it skips (the
    harness covers them) and the first data upload's S3 event finding no build yet (deployer
    behaviour: a data change before any pipeline run has nothing to train)."""
    for name in ("moto", "harness.seams.awslambda"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Tried to parse AWS::", category=UserWarning)


def _options(
    work_dir: Path,
    runtime: str,
    data: Path | None,
    queries: Path | None,
    approval: str,
    report_dir: Path | None,
    time_scale: float,
    source: Path,
    ref: str | None,
    api_batch_size: int = 64,
    training_cache: bool = True,
    iam: bool = True,
    timing: str = "fast",
) -> FlowOptions:
    _quiet()
    if runtime not in RUNTIMES:
        raise typer.BadParameter(f"one of {', '.join(RUNTIMES)}", param_hint="--runtime")
    if timing not in PROFILE_NAMES:
        raise typer.BadParameter(f"one of {', '.join(PROFILE_NAMES)}", param_hint="--timing")
    if approval not in APPROVALS:
        raise typer.BadParameter(f"one of {', '.join(APPROVALS)}", param_hint="--approval")
    running = ControlChannel(work_dir).running_elsewhere()
    if running is not None:
        raise typer.BadParameter(
            f"a stack (pid {running.pid}) runs with this work dir: stop it or name another",
            param_hint="--work-dir",
        )
    try:
        return FlowOptions(
            work_dir=work_dir,
            runtime=runtime,
            data=data,
            queries=queries,
            approval=approval,
            report_dir=report_dir,
            time_scale=time_scale,
            source=source,
            ref=ref,
            api_batch_size=api_batch_size,
            training_cache=training_cache,
            iam=iam,
            timing=timing,
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error


def _echo_to(stream_err: bool) -> Any:
    def write(line: str) -> None:
        typer.echo(line, err=stream_err)

    return write


def run(
    runtime: str = _RUNTIME,
    data: Path | None = _DATA,
    queries: Path | None = _QUERIES,
    approval: str = _APPROVAL,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary as stdout's last line."),
    report_dir: Path | None = _REPORT_DIR,
    time_scale: float = _TIME_SCALE,
    timing: str = _TIMING,
    work_dir: Path = _WORK_DIR,
    source: Path = _SOURCE,
    ref: str | None = _REF,
    api_batch_size: int = _API_BATCH,
    training_cache: bool = _TRAINING_CACHE,
    console: bool = _CONSOLE,
    console_port: int = _CONSOLE_PORT,
    iam: bool = _IAM,
) -> None:
    """Run the full flow locally: deploy, data to S3, commit -> pipeline -> HTTP API -> sample answers."""
    options = _options(
        work_dir,
        runtime,
        data,
        queries,
        approval,
        report_dir,
        time_scale,
        source,
        ref,
        api_batch_size=api_batch_size,
        training_cache=training_cache,
        iam=iam,
        timing=timing,
    )
    write = _echo_to(as_json)
    summary = _run(options, write, keep_up=False, console=_Console(console, False, console_port))
    _finish(summary, as_json, write)


def up(
    runtime: str = _RUNTIME,
    data: Path | None = _DATA,
    queries: Path | None = _QUERIES,
    approval: str = _APPROVAL,
    report_dir: Path | None = _REPORT_DIR,
    time_scale: float = _TIME_SCALE,
    work_dir: Path = _WORK_DIR,
    source: Path = _SOURCE,
    ref: str | None = _REF,
    console: bool = _CONSOLE,
    open_browser: bool = typer.Option(False, "--open", help="Serve the console and open it in a browser."),
    console_port: int = _CONSOLE_PORT,
) -> None:
    """Run the full flow, then keep the local stack up (and take `mlops trigger`s) until Ctrl-C."""
    options = _options(work_dir, runtime, data, queries, approval, report_dir, time_scale, source, ref)
    wanted = _Console(console or open_browser, open_browser, console_port)
    summary = _run(options, typer.echo, keep_up=True, console=wanted)
    if not summary.succeeded:
        raise typer.Exit(1)


@dataclass(frozen=True)
class _Console:
    serve: bool = False
    open_browser: bool = False
    port: int = 0


def _start_console(flow: LocalFlow, wanted: _Console, write: Any) -> ConsoleServer | None:
    if not wanted.serve:
        return None
    approver = os.environ.get("USER", "console")
    server = ConsoleServer(flow.stack.endpoint_url, REGION, port=wanted.port, approver=approver).start()
    write(f"console:  {server.url}")
    if wanted.open_browser and not server.open_browser():
        write("          (no browser found here: open the URL above)")
    return server


def _run(options: FlowOptions, write: Any, keep_up: bool, console: _Console | None = None) -> FlowSummary:
    fresh_work_dir(options.work_dir)
    flow = LocalFlow(options, write, _pipeline_lines(options, write))
    control = flow.control
    summary: FlowSummary | None = None
    server: ConsoleServer | None = None
    try:
        try:
            flow.start()
            server = _start_console(flow, console or _Console(), write)
        except Exception as error:  # a setup failure is a failed run with its reason
            return FlowSummary(failed_stage="Setup", reason=str(error))
        control.announce(StackInfo(os.getpid(), flow.stack.endpoint_url, None, None, time.time()))
        summary = run_once(flow, write)
        if server is not None:
            server.set_api_url(summary.api_url)
        if not keep_up:
            return summary
        typer.echo(describe(summary))
        control.announce(
            StackInfo(os.getpid(), flow.stack.endpoint_url, summary.api_url, summary.api_key, time.time())
        )
        typer.echo(f"\nThe local stack is up (Ctrl-C stops it). Emulator: {flow.stack.endpoint_url}")
        typer.echo(f"  aws --endpoint-url {flow.stack.endpoint_url} stepfunctions list-state-machines")
        if summary.api_url:
            body = '{"inputs": "can you freeze my bank account"}'
            typer.echo(
                f"  curl -H 'x-api-key: {summary.api_key}' -H 'Content-Type: application/json' "
                f"-d '{body}' {summary.api_url}"
            )
        typer.echo(f"  mlops trigger commit | mlops trigger data FILE.csv   (--work-dir {options.work_dir})")
        _serve_triggers(flow, control)
        return summary
    except KeyboardInterrupt:
        typer.echo("stopping the local stack", err=True)
        if keep_up and summary is not None:
            return summary  # Ctrl-C is how `up` ends: its outcome is the first run's
        return FlowSummary(failed_stage="Interrupted", reason="interrupted")
    finally:
        control.withdraw()
        if server is not None:
            server.stop()
        flow.stop()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _serve_triggers(flow: LocalFlow, control: ControlChannel) -> None:
    # `kill` stops the stack as cleanly as Ctrl-C (endpoints, workers and the emulator are stopped).
    signal.signal(signal.SIGTERM, _interrupt)
    while True:
        request = control.next_request()
        if request is None:
            time.sleep(0.5)
            continue
        typer.echo(f"\ntrigger {request.kind} {request.path}{' ' + request.ref if request.ref else ''}")
        control.answer(request, _handle(flow, request))


def _handle(flow: LocalFlow, request: TriggerRequest) -> dict[str, Any]:
    try:
        if request.kind == "data":
            result = flow.retrain_on_data(Path(request.path))
            typer.echo(f"data run {result['execution_status']}: {result['execution_arn']}")
            return result
        options = flow.options
        _, queries = training_and_queries(options.data, options.queries, options.samples)
        pipeline = flow.run_pipeline(Path(request.path), request.ref)
        summary = flow.complete_run(
            pipeline,
            queries,
            FlowSummary(runtime=flow.runtime, emulator_url=flow.stack.endpoint_url),
            options.work_dir / "reports" / pipeline.execution_id,
        )
        typer.echo(describe(summary))
        return summary.to_json()
    except (FlowError, ValueError, OSError) as error:
        typer.echo(f"trigger failed: {error}", err=True)
        return {"status": "failed", "reason": str(error)}


def _finish(summary: FlowSummary, as_json: bool, write: Any) -> None:
    write(describe(summary))
    if as_json:
        typer.echo(json.dumps(summary.to_json(), default=str))
    if not summary.succeeded:
        typer.echo(f"mlops run failed at {summary.failed_stage}: {summary.reason}", err=True)
        raise typer.Exit(1)


def approve(
    comment: str = typer.Option("", "--comment", help="Why (shown in the registry item)."),
    token: str | None = typer.Option(None, "--token", help="Which request, when several wait."),
    work_dir: Path = _WORK_DIR,
) -> None:
    """Approve the pipeline approval waiting in a running `mlops run/up --approval wait`."""
    _decide(True, comment, token, work_dir)


def reject(
    comment: str = typer.Option(..., "--comment", help="Why the model is rejected."),
    token: str | None = typer.Option(None, "--token", help="Which request, when several wait."),
    work_dir: Path = _WORK_DIR,
) -> None:
    """Reject the waiting approval: the pipeline stops there; registry and API stay as they were."""
    _decide(False, comment, token, work_dir)


def _decide(approved: bool, comment: str, token: str | None, work_dir: Path) -> None:
    """PutApprovalResult on the approval GetPipelineState shows waiting (the one, or `token`'s)."""
    try:
        info = ControlChannel(work_dir).running()
        view = StackView(info.emulator_url, REGION)
        waiting = view.pending_approvals()
        if token is not None:
            waiting = [approval for approval in waiting if approval.token == token]
        if len(waiting) != 1:
            named = f" with token {token}" if token else ""
            tokens = [approval.token for approval in view.pending_approvals()]
            raise ControlError(f"{len(waiting)} approvals{named} are waiting {tokens}: name one with --token")
        view.decide(waiting[0], approved, comment, os.environ.get("USER", "local"))
    except (ControlError, AwsError) as error:
        typer.echo(f"mlops: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo(f"{'approved' if approved else 'rejected'} {waiting[0].token}")


_DATA_FILE = typer.Argument(..., exists=True, dir_okay=False, help="A Query,Intent CSV.")
trigger_app = typer.Typer(help="Start a run on a running `mlops up`: a new commit, or new data.")


@trigger_app.command("commit")
def trigger_commit(
    source: Path = _SOURCE,
    ref: str | None = _REF,
    work_dir: Path = _WORK_DIR,
    timeout_s: float = typer.Option(1800, "--timeout", help="Seconds to wait for the run's result."),
) -> None:
    """Run the pipeline on a commit of SOURCE (default: this repository's working tree)."""
    _trigger("commit", source, ref, work_dir, timeout_s)


@trigger_app.command("data")
def trigger_data(
    path: Path = _DATA_FILE,
    work_dir: Path = _WORK_DIR,
    timeout_s: float = typer.Option(1800, "--timeout", help="Seconds to wait for the run's result."),
) -> None:
    """Put PATH under the data prefix: the definitions retrain the last build on it."""
    _trigger("data", path, None, work_dir, timeout_s)


def _trigger(kind: str, path: Path, ref: str | None, work_dir: Path, timeout_s: float) -> None:
    channel = ControlChannel(work_dir)
    try:
        request = channel.request(kind, path, ref)
        typer.echo(f"trigger {request.id} sent; waiting for its result", err=True)
        result = channel.wait_for_result(request, timeout_s)
    except ControlError as error:
        typer.echo(f"mlops: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo(json.dumps(result, default=str))
    if result.get("status") != "succeeded":
        raise typer.Exit(1)


__all__ = ["approve", "reject", "run", "trigger_app", "up"]


def _pipeline_lines(options: FlowOptions, write: Callable[[str], None]) -> Callable[[PipelineEvent], None]:
    """One line per pipeline event; with `--approval wait`, how to decide when Approve starts."""
    printer = ProgressPrinter(write)
    hint = (
        "             waiting for `mlops approve` or `mlops reject --comment TEXT` "
        f"(--work-dir {options.work_dir})"
    )

    def show(event: PipelineEvent) -> None:
        printer(event)
        if options.approval == "wait" and event.kind == "action-started" and event.stage == "Approve":
            write(hint)

    return show


def describe(summary: FlowSummary) -> str:
    """The closing lines a person reads."""
    lines = []
    if summary.succeeded:
        lines.append(f"API:      {summary.api_url}")
        lines.append(f"API key:  {summary.api_key}")
        lines.append(f"endpoint: {summary.endpoint_name}   model version: {summary.model_version}")
        for answer in summary.sample_answers:
            expected = f" (expected {answer.expected})" if answer.expected else ""
            lines.append(f"  {answer.http_status} {answer.query!r} -> {answer.intent}{expected}")
        if summary.registry_item is not None:
            lines.append("registry entry:")
            lines.append(json.dumps(summary.registry_item, indent=2, sort_keys=True))
    else:
        lines.append(f"FAILED at {summary.failed_stage}: {summary.reason}")
    timings = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in summary.stage_timings_s.items())
    lines.append(f"stages: {timings}")
    if summary.report_dir:
        lines.append(f"report:   {summary.report_dir}/index.html")
    return "\n".join(lines)


def fresh_work_dir(path: Path) -> Path:
    """Empties `path` (a previous run's files) and returns it."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path
