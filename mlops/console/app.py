"""The console's pages and endpoints (Starlette), over a `StackView` (AWS APIs only).

Pages (full HTML, each polling its fragment with htmx): `/pipeline`, `/statemachine`, `/sagemaker`,
`/registry`, `/api`, `/logs`. Fragments: `/fragments/...` (the live parts). Actions (POST, form
encoded, guarded by `security.Guard`): `/approval` (PutApprovalResult), `/invoke` (InvokeEndpoint),
`/api/call` (a request through the local API Gateway).

Bad input is a 4xx with a plain message: an unknown execution, state, endpoint or log group 404; a
missing or bad form field 400; a body that is not form-encoded 415; a wrong method 405 (Starlette).
An AWS call that fails answers 502 with the service's message (the endpoint, not the input, failed).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import requests
from botocore.exceptions import BotoCoreError, ClientError
from jinja2 import Environment, FileSystemLoader, Undefined, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from harness.report.metrics import loss_curve_svg, loss_points, parse_metric_lines
from harness.report.statemachine import render_svg, state_statuses
from mlops.console.aws import AwsError, NotFound, StackView
from mlops.console.security import BodyTooLarge, Guard

LOG = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
MAX_FIELD = 8 * 1024
PAGES = ("pipeline", "statemachine", "sagemaker", "registry", "api", "logs")


@dataclass
class ConsoleConfig:
    token: str
    port: int
    api_url: str | None = None  # the API's local URL (the stack prints it); None until published
    approver: str = "console"
    poll_ms: int = 1500


def _time(value: Any) -> str:
    from datetime import UTC, datetime

    if value is None or isinstance(value, Undefined):
        return ""
    try:
        return datetime.fromtimestamp(float(value), UTC).strftime("%H:%M:%S")
    except (TypeError, ValueError):
        return "" if value is None else str(value)


def _seconds(start: Any, end: Any) -> str:
    if any(value is None or isinstance(value, Undefined) for value in (start, end)):
        return ""
    try:
        return f"{float(end) - float(start):.1f} s"
    except (TypeError, ValueError):
        return ""


def templates() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]), auto_reload=False
    )
    environment.filters["clock"] = _time
    environment.globals["seconds"] = _seconds
    environment.filters["pretty"] = lambda value: json.dumps(value, indent=2, default=str, sort_keys=True)
    return environment


async def _form(request: Request) -> dict[str, str]:
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        raise HTTPException(415, "send the form as application/x-www-form-urlencoded")
    try:
        body = await request.body()
    except BodyTooLarge as error:
        raise HTTPException(413, str(error)) from error
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as error:
        raise HTTPException(400, f"the form cannot be read: {error}") from error
    form = {key: values[-1] for key, values in fields.items()}
    long = [key for key, value in form.items() if len(value) > MAX_FIELD]
    if long:
        raise HTTPException(400, f"fields over {MAX_FIELD} characters: {long}")
    return form


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise HTTPException(400, f"the form field {name!r} is missing")
    return value


class Console:
    """The routes; state: the view, the config and the templates (no module globals)."""

    def __init__(self, view: StackView, config: ConsoleConfig) -> None:
        self.view = view
        self.config = config
        self.templates = templates()

    def render(self, template: str, **context: Any) -> HTMLResponse:
        text = self.templates.get_template(template).render(poll_ms=self.config.poll_ms, **context)
        return HTMLResponse(text)

    # -- pages -------------------------------------------------------------------------------------
    async def home(self, request: Request) -> Response:
        return RedirectResponse("/pipeline", status_code=303)

    async def page(self, request: Request) -> Response:
        page = request.url.path.strip("/")
        context: dict[str, Any] = {"page": page, "query": dict(request.query_params)}
        if page == "statemachine":
            context["executions"] = self.view.executions()
            context["selected"] = request.query_params.get("execution") or (
                context["executions"][0]["executionArn"] if context["executions"] else ""
            )
        if page == "api":
            context["api_url"] = self.config.api_url
            context["api_key"] = self.view.api_key()
            context["invoke_urls"] = self.view.invoke_urls()
        if page == "logs":
            context["groups"] = self.view.log_groups()
        return self.render(f"{page}.html", **context)

    # -- fragments ---------------------------------------------------------------------------------
    async def pipeline_fragment(self, request: Request) -> Response:
        state = self.view.pipeline_state()
        executions = self.view.pipeline_executions()
        return self.render(
            "fragments/pipeline.html", state=state, executions=executions, images=self._images_by_commit()
        )

    def _images_by_commit(self) -> dict[str, str]:
        """commit -> the image digest its training execution ran (the Step Functions execution's input
        carries CommitId and ImageDigest: deployer/README.md, the state machine's input)."""
        images: dict[str, str] = {}
        for run in self.view.executions()[:20]:
            described = self.view.client("stepfunctions").describe_execution(executionArn=run["executionArn"])
            try:
                document = json.loads(described.get("input") or "{}")
            except ValueError:
                continue
            if isinstance(document, dict) and document.get("CommitId") and document.get("ImageDigest"):
                images.setdefault(str(document["CommitId"]), str(document["ImageDigest"]))
        return images

    async def approval_fragment(self, request: Request) -> Response:
        pending = self.view.pending_approvals()
        shown = request.query_params.get("shown", "")
        if pending and pending[0].token == shown:
            return Response(status_code=204)  # htmx keeps what it shows (the user may be typing)
        candidate = self.view.output("CandidateEndpointName")
        job = self._latest_training_job() if pending else None
        return self.render(
            "fragments/approval.html",
            approval=pending[0] if pending else None,
            candidate=candidate,
            endpoint=self.view.endpoint(candidate) if (candidate and pending) else None,
            metrics=(job or {}).get("FinalMetricDataList", []),
            job=job,
        )

    def _latest_training_job(self) -> dict[str, Any] | None:
        jobs = self.view.training_jobs()
        return jobs[0] if jobs else None

    async def statemachine_fragment(self, request: Request) -> Response:
        arn = request.query_params.get("execution", "")
        if not arn:
            return self.render("fragments/statemachine.html", execution=None)
        try:
            described, definition, events = self.view.execution(arn)
        except NotFound as error:
            raise HTTPException(404, str(error)) from error
        statuses = state_statuses(definition, events)
        key = (
            json.dumps(definition, sort_keys=True),
            tuple(sorted(statuses.items())),
            str(described.get("name")),
        )
        return self.render(
            "fragments/statemachine.html",
            execution=described,
            svg=self._graph(key),
            events=events,
        )

    @functools.lru_cache(maxsize=64)  # noqa: B019  (one Console per server: the cache lives as long)
    def _graph(self, key: tuple[str, tuple[tuple[str, str], ...], str]) -> str:
        """The drawing for (definition, statuses, title): dot runs once per change, not once per poll."""
        definition, statuses, title = key
        return render_svg(json.loads(definition), dict(statuses), title=title)

    async def state_fragment(self, request: Request) -> Response:
        arn = request.query_params.get("execution", "")
        name = request.query_params.get("state", "")
        if not arn or not name:
            raise HTTPException(400, "give execution and state")
        try:
            _, definition, events = self.view.execution(arn)
        except NotFound as error:
            raise HTTPException(404, str(error)) from error
        if name not in definition.get("States", {}):
            raise HTTPException(404, f"the state machine has no state {name!r}")
        inputs = [
            e["stateEnteredEventDetails"].get("input")
            for e in events
            if (e.get("stateEnteredEventDetails") or {}).get("name") == name
        ]
        outputs = [
            e["stateExitedEventDetails"].get("output")
            for e in events
            if (e.get("stateExitedEventDetails") or {}).get("name") == name
        ]
        return self.render(
            "fragments/state.html",
            name=name,
            state=definition["States"][name],
            input=_json_text(inputs[-1]) if inputs else None,
            output=_json_text(outputs[-1]) if outputs else None,
            entered=len(inputs),
        )

    async def sagemaker_fragment(self, request: Request) -> Response:
        jobs = self.view.training_jobs()
        logs: dict[str, str] = {}
        curves: dict[str, str] = {}
        for job in jobs[:3]:
            name = str(job["TrainingJobName"])
            text = self._training_log(name)
            if text:
                logs[name] = text[-20000:]
                points = loss_points(parse_metric_lines(text))
                if len(points) > 1:
                    curves[name] = loss_curve_svg(points)
        return self.render(
            "fragments/sagemaker.html",
            jobs=jobs,
            logs=logs,
            curves=curves,
            models=self.view.models(),
            configs=self.view.endpoint_configs(),
            endpoints=self.view.endpoints(),
        )

    def _training_log(self, job_name: str) -> str:
        try:
            events = self.view.log_events("/aws/sagemaker/TrainingJobs", job_name)
        except NotFound:
            return ""
        return "\n".join(str(e.get("message", "")) for e in events)

    async def registry_fragment(self, request: Request) -> Response:
        items, serving_config = self.view.registry()
        return self.render("fragments/registry.html", items=items, serving_config=serving_config)

    async def logs_fragment(self, request: Request) -> Response:
        group = request.query_params.get("group", "")
        pattern = request.query_params.get("filter", "")[:200]
        if not group:
            return self.render("fragments/logs.html", group=None, events=[])
        try:
            events = self.view.log_events(group, pattern)
        except NotFound as error:
            raise HTTPException(404, str(error)) from error
        return self.render("fragments/logs.html", group=group, events=events, pattern=pattern)

    # -- actions -----------------------------------------------------------------------------------
    async def approval(self, request: Request) -> Response:
        form = await _form(request)
        token = _required(form, "token")
        decision = _required(form, "decision")
        if decision not in ("approve", "reject"):
            raise HTTPException(400, "decision is approve or reject")
        comment = form.get("comment", "").strip()
        if decision == "reject" and not comment:
            raise HTTPException(400, "a rejection needs a comment")
        if len(comment) > 512:
            raise HTTPException(400, "the comment is over 512 characters (PutApprovalResult's limit)")
        waiting = {a.token: a for a in self.view.pending_approvals()}
        if token not in waiting:
            raise HTTPException(409, f"no approval with token {token} is waiting (decided already, or gone)")
        try:
            self.view.decide(waiting[token], decision == "approve", comment, self.config.approver)
        except AwsError as error:
            raise HTTPException(409, str(error)) from error
        LOG.info(json.dumps({"approval": decision, "token": token}))
        return self.render(
            "fragments/decided.html", decision=decision, approval=waiting[token], comment=comment
        )

    async def invoke(self, request: Request) -> Response:
        form = await _form(request)
        endpoint = _required(form, "endpoint")
        body = _required(form, "body")
        try:
            json.loads(body)
        except ValueError as error:
            raise HTTPException(400, f"the body is not JSON: {error}") from error
        try:
            answer = self.view.invoke_endpoint(endpoint, body.encode("utf-8"))
        except NotFound as error:
            raise HTTPException(404, str(error)) from error
        except AwsError as error:
            raise HTTPException(502, str(error)) from error
        return self.render("fragments/answer.html", status="200", text=_json_text(answer))

    async def api_call(self, request: Request) -> Response:
        form = await _form(request)
        body = _required(form, "body")
        if not self.config.api_url:
            raise HTTPException(409, "the API is not published yet")
        key = self.view.api_key() or ""
        try:
            answer = requests.post(
                self.config.api_url,
                data=body.encode("utf-8"),
                timeout=60,
                headers={"x-api-key": key, "Content-Type": "application/json"},
            )
        except requests.RequestException as error:
            raise HTTPException(502, f"the API did not answer: {error}") from error
        return self.render(
            "fragments/answer.html", status=str(answer.status_code), text=_json_text(answer.text)
        )


def _json_text(value: Any) -> str:
    if isinstance(value, str):
        try:
            return json.dumps(json.loads(value), indent=2, sort_keys=True)
        except ValueError:
            return value
    return json.dumps(value, indent=2, default=str)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return PlainTextResponse(str(error.detail), status_code=error.status_code)


async def _aws_error(request: Request, error: Exception) -> Response:
    LOG.warning("an AWS call failed: %s", error)
    return PlainTextResponse(f"an AWS call failed: {error}", status_code=502)


def create_app(view: StackView, config: ConsoleConfig) -> Guard:
    """The console's ASGI app, guarded."""
    console = Console(view, config)
    handler = Callable[[Request], Awaitable[Response]]
    get: list[tuple[str, handler]] = [
        ("/", console.home),
        ("/fragments/pipeline", console.pipeline_fragment),
        ("/fragments/approval", console.approval_fragment),
        ("/fragments/statemachine", console.statemachine_fragment),
        ("/fragments/state", console.state_fragment),
        ("/fragments/sagemaker", console.sagemaker_fragment),
        ("/fragments/registry", console.registry_fragment),
        ("/fragments/logs", console.logs_fragment),
        *[(f"/{page}", console.page) for page in PAGES],
    ]
    post: list[tuple[str, handler]] = [
        ("/approval", console.approval),
        ("/invoke", console.invoke),
        ("/api/call", console.api_call),
    ]
    routes = [
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        *[Route(path, endpoint, methods=["POST"]) for path, endpoint in post],
        *[Route(path, endpoint, methods=["GET"]) for path, endpoint in get],
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            HTTPException: _http_error,
            ClientError: _aws_error,
            BotoCoreError: _aws_error,
        },
    )
    return Guard(app, config.token, config.port)
