"""The console in a real headless browser (Debian's chromium driven by Playwright): a run watched until
its approval, approved from the page, the pipeline finishing and the new version marked serving; a
second run rejected from the page, the serving version staying as it was. No JavaScript error in the
browser's console; a screenshot of each page under reports/console/.

One stack (process runtime, approval policy `wait`), as `mlops up --console --approval wait` serves it.
The page decides through CodePipeline's PutApprovalResult (the token from GetPipelineState).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.control import StackInfo
from harness.emulator import REGION
from harness.flow import FlowOptions, FlowSummary, LocalFlow, training_and_queries
from harness.pipeline import PipelineResult
from mlops.console import ConsoleServer
from tests.conftest import REPO_ROOT
from tests.flow.source_repo import commit_hyperparameters, make_source_repository

pytestmark = pytest.mark.slow

REQUIRE_BROWSER_ENV = "MLOPS_REQUIRE_BROWSER"
CHROMIUM = shutil.which("chromium")
SHOTS = REPO_ROOT / "reports" / "console"
# docs/FACTS.md: the flags with which Debian's chromium renders local pages headless, offline, as root.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RUN_TIMEOUT_MS = 15 * 60 * 1000

if CHROMIUM is None:
    if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
        raise RuntimeError(
            f"{REQUIRE_BROWSER_ENV}=1 but no chromium is installed (scripts/test.sh installs it)"
        )
    pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it)", allow_module_level=True)

if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
    import playwright.sync_api as playwright_api  # required: a missing driver fails, never skips
else:
    playwright_api = pytest.importorskip("playwright.sync_api")


@dataclass
class Run:
    """A pipeline run in the background, as `mlops up` serves a trigger."""

    flow: LocalFlow
    source: Path
    result: PipelineResult | None = None
    summary: FlowSummary | None = None
    error: BaseException | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            _, queries = training_and_queries(None, None, 3)
            self.result = self.flow.run_pipeline(self.source)
            self.summary = self.flow.complete_run(self.result, queries, FlowSummary(runtime="process"))
        except BaseException as error:  # reported by finish()
            self.error = error

    def finish(self, timeout_s: float = 900) -> PipelineResult:
        self.thread.join(timeout=timeout_s)
        assert not self.thread.is_alive(), "the run did not finish"
        assert self.error is None, repr(self.error)
        assert self.result is not None
        return self.result


@dataclass
class Stack:
    flow: LocalFlow
    source: Path
    console: ConsoleServer


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("console")
    source = make_source_repository(root / "source")
    options = FlowOptions(
        work_dir=root / "work", runtime="process", approval="wait", source=source, report_dir=root / "report"
    )
    with LocalFlow(options, lambda line: None) as flow:
        flow.control.announce(StackInfo(os.getpid(), flow.stack.endpoint_url, None, None, time.time()))
        training, _ = training_and_queries(None, None, 3)
        flow.put_data(training)
        with ConsoleServer(flow.stack.endpoint_url, REGION, approver="browser-test") as console:
            yield Stack(flow, source, console)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        user_data = tempfile.mkdtemp(prefix="console-chromium-")
        context = playwright.chromium.launch_persistent_context(
            user_data,
            executable_path=CHROMIUM,
            args=FLAGS,
            headless=True,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(user_data, ignore_errors=True)


@pytest.fixture(scope="module")
def page(browser: Any, stack: Stack) -> Iterator[Any]:
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.problems = problems
    page.goto(stack.console.url)
    yield page
    page.close()


def _shoot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _serving_version(page: Any, stack: Stack) -> str:
    page.goto(f"http://127.0.0.1:{stack.console.port}/registry")
    page.wait_for_selector("#registry-items tr[data-serving='yes']", timeout=60_000)
    return str(page.get_attribute("#registry-items tr[data-serving='yes']", "data-version"))


def _decide_on_the_page(page: Any, stack: Stack, button: str, comment: str) -> None:
    page.goto(f"http://127.0.0.1:{stack.console.port}/pipeline")
    page.wait_for_selector("#approve", timeout=RUN_TIMEOUT_MS)  # the run reached its approval
    page.fill("#comment", comment)
    if button == "#approve":
        _shoot(page, "pipeline-approval")
    page.click(button)
    page.wait_for_selector(".decided", timeout=30_000)


def _wait_for_execution(page: Any, execution_id: str, status: str) -> None:
    row = f"#executions tr[data-execution='{execution_id}'][data-status='{status}']"
    page.wait_for_selector(row, timeout=RUN_TIMEOUT_MS)


def test_approve_then_reject_from_the_page(page: Any, stack: Stack) -> None:
    first = Run(stack.flow, stack.source)
    _decide_on_the_page(page, stack, "#approve", "metrics look right")
    result = first.finish()
    assert result.succeeded, f"{result.failed_stage}: {result.reason}"
    _wait_for_execution(page, result.execution_id, "Succeeded")
    _shoot(page, "pipeline")
    assert first.summary is not None and first.summary.succeeded, first.summary
    stack.console.set_api_url(first.summary.api_url)
    version = _serving_version(page, stack)
    assert version == first.summary.model_version
    _shoot(page, "registry")

    # what each page shows once its data is in (polling pages never go network-idle)
    ready = {
        "statemachine": "#graph g.state",
        "sagemaker": "#sagemaker tr[data-job]",
        "api": "#api-form",
        "logs": "#logs-form",
    }
    for name, selector in ready.items():
        page.click(f"nav a[data-page='{name}']")
        page.wait_for_selector(selector, timeout=60_000)
        if name == "statemachine":
            page.wait_for_selector("#graph g.state[data-status='succeeded']", timeout=30_000)
            page.click("#graph g.state[data-state='Train']")
            page.wait_for_selector("#state-output", timeout=30_000)
        if name == "logs":  # the start-training Lambda's log (CloudWatch Logs), filtered by the run's commit
            group = page.eval_on_selector(
                "select[name=group]",
                "s => [...s.options].map(o => o.value).find(v => v.includes('start-training'))",
            )
            assert group, "no log group for the start-training Lambda"
            page.select_option("select[name=group]", group)
            page.click("#logs-form button")
            page.wait_for_selector("pre.log", timeout=30_000)
            assert page.locator("#log-events p").inner_text().split()[0] != "0", "the Lambda's log is empty"
        if name == "api":
            assert "execute-api" in page.inner_text(".invoke-url")  # API Gateway's invoke URL form
            page.click("#api-form button")
            page.wait_for_selector("#api-answer pre[data-status='200']", timeout=60_000)
        _shoot(page, name)

    commit_hyperparameters(stack.source, "one more epoch", epochs="9")
    second = Run(stack.flow, stack.source)
    _decide_on_the_page(page, stack, "#reject", "not better than what serves")
    rejected = second.finish()
    assert not rejected.succeeded and rejected.failed_stage == "Approve"
    _wait_for_execution(page, rejected.execution_id, "Failed")
    _shoot(page, "pipeline-rejected")
    assert _serving_version(page, stack) == version  # the serving version stayed as it was
    rows = page.locator("#registry-items tr[data-version]").count()
    assert rows == 1, "a rejected run registered a version"

    assert page.problems == [], page.problems
