"""The local Lambda runtime on its own (no emulator): real handlers in child processes."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.lambda_runtime import FunctionSpec, LambdaRuntime, LambdaRuntimeError, zip_sources

HANDLER = """
import json, os, sys, time, subprocess

print("init ran")
INVOKES = 0

def handler(event, context):
    global INVOKES
    INVOKES += 1
    action = event.get("action")
    print("got", json.dumps(event))
    if action == "fail":
        raise KeyError("no such thing")
    if action == "sleep":
        # A grandchild too: the whole process group must die with the handler.
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        time.sleep(event["seconds"])
        open(event["marker"], "w").write("still alive")
        return "late"
    if action == "exit":
        os._exit(3)
    if action == "unserialisable":
        return {"value": object()}
    if action == "count":
        return {"invokes": INVOKES, "pid": os.getpid()}
    if action == "big":
        return {"blob": event["blob"], "length": len(event["blob"])}
    if action == "import_project":
        try:
            import harness
        except ImportError:
            return "hidden"
        return harness.__file__
    return {
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "arn": context.invoked_function_arn,
        "remaining": context.get_remaining_time_in_millis(),
        "log_group": context.log_group_name,
        "env": {name: os.environ.get(name) for name in (
            "GREETING", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_LAMBDA_FUNCTION_NAME", "AWS_ACCESS_KEY_ID",
            "_HARNESS_CONTROL_FD")},
        "cwd": os.getcwd(),
    }
"""
FAKE_ENDPOINT = "http://127.0.0.1:9"  # nothing listens: these handlers make no AWS calls


def spec(code: bytes, timeout_s: float = 5.0, **overrides: object) -> FunctionSpec:
    import hashlib

    fields: dict[str, object] = {
        "name": "probe",
        "arn": "arn:aws:lambda:us-east-1:123456789012:function:probe",
        "handler": "app.handler",
        "runtime": "python3.11",
        "code_zip": code,
        "code_sha256_hex": hashlib.sha256(code).hexdigest(),
        "region": "us-east-1",
        "timeout_s": timeout_s,
        "memory_mb": 256,
        # AWS_REGION is reserved: the function's own value must not win.
        "environment": {"GREETING": "hi", "AWS_REGION": "eu-west-9"},
    }
    fields.update(overrides)
    return FunctionSpec(**fields)  # type: ignore[arg-type]


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[LambdaRuntime]:
    runtime = LambdaRuntime(endpoint_url=FAKE_ENDPOINT, cache_dir=tmp_path / "code")
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def code() -> bytes:
    return zip_sources({"app.py": HANDLER})


def test_result_context_and_environment(runtime: LambdaRuntime, code: bytes) -> None:
    invocation = runtime.invoke(spec(code), {"action": "echo"})
    assert invocation.function_error is None
    result = json.loads(invocation.payload)
    assert result["request_id"] == invocation.request_id
    assert result["function_name"] == "probe"
    assert result["memory"] == "256"
    assert result["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:probe"
    assert 0 < result["remaining"] <= 5000
    assert result["log_group"] == "/aws/lambda/probe"
    assert result["env"] == {
        "GREETING": "hi",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": FAKE_ENDPOINT,
        "AWS_LAMBDA_FUNCTION_NAME": "probe",
        "AWS_ACCESS_KEY_ID": "testing",
        "_HARNESS_CONTROL_FD": None,
    }
    assert Path(result["cwd"]) == runtime.task_root(spec(code))


def test_unhandled_error_has_aws_shape(runtime: LambdaRuntime, code: bytes) -> None:
    invocation = runtime.invoke(spec(code), {"action": "fail"})
    assert invocation.function_error == "Unhandled"
    error = json.loads(invocation.payload)
    assert error["errorType"] == "KeyError"
    assert error["errorMessage"] == "'no such thing'"
    assert error["requestId"] == invocation.request_id
    assert any("in handler" in frame for frame in error["stackTrace"])
    assert "KeyError" in invocation.log


def test_timeout_kills_the_process_group(runtime: LambdaRuntime, code: bytes, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    started = time.monotonic()
    invocation = runtime.invoke(
        spec(code, timeout_s=1.0), {"action": "sleep", "seconds": 3, "marker": str(marker)}
    )
    elapsed = time.monotonic() - started
    assert invocation.function_error == "Unhandled"
    error = json.loads(invocation.payload)
    assert error["errorType"] == "Sandbox.Timedout"
    assert (
        error["errorMessage"]
        == f"RequestId: {invocation.request_id} Error: Task timed out after 1.00 seconds"
    )
    assert f"{invocation.request_id} Task timed out after 1.00 seconds" in invocation.log
    assert elapsed < 2.5
    time.sleep(2.5)
    assert not marker.exists(), "the handler kept running after its timeout"


@pytest.mark.parametrize(
    ("event", "error_type"),
    [({"action": "exit"}, "Runtime.ExitError"), ({"action": "unserialisable"}, "Runtime.MarshalError")],
)
def test_runtime_errors(runtime: LambdaRuntime, code: bytes, event: dict[str, str], error_type: str) -> None:
    invocation = runtime.invoke(spec(code), event)
    assert invocation.function_error == "Unhandled"
    assert json.loads(invocation.payload)["errorType"] == error_type
    if error_type == "Runtime.ExitError":
        assert json.loads(invocation.payload)["errorMessage"].endswith("exit status 3")
        assert runtime.workers("probe") == 0, "a crashed worker is not reused"


def test_the_projects_checkout_is_not_importable(runtime: LambdaRuntime, code: bytes) -> None:
    """The venv installs this project in editable mode; a handler must not see it (AWS would not)."""
    invocation = runtime.invoke(spec(code), {"action": "import_project"})
    assert json.loads(invocation.payload) == "hidden"


def test_bad_handler_names(runtime: LambdaRuntime, code: bytes) -> None:
    missing_module = runtime.invoke(spec(code, handler="nope.handler"), {})
    assert json.loads(missing_module.payload)["errorType"] == "Runtime.ImportModuleError"
    missing_function = runtime.invoke(spec(code, handler="app.absent"), {})
    assert json.loads(missing_function.payload)["errorType"] == "Runtime.HandlerNotFound"


def test_non_python_runtime_is_refused(runtime: LambdaRuntime, code: bytes) -> None:
    invocation = runtime.invoke(spec(code, runtime="nodejs20.x"), {})
    assert invocation.function_error == "Unhandled"
    assert json.loads(invocation.payload)["errorType"] == "Runtime.Unsupported"


def test_logs_are_kept_per_function_and_request(runtime: LambdaRuntime, code: bytes) -> None:
    first = runtime.invoke(spec(code), {"action": "echo", "n": 1})
    second = runtime.invoke(spec(code, name="other"), {"action": "echo", "n": 2})
    assert [i.request_id for i in runtime.invocations("probe")] == [first.request_id]
    assert [i.request_id for i in runtime.invocations()] == [first.request_id, second.request_id]
    assert runtime.invocation(second.request_id) is second
    assert first.event == {"action": "echo", "n": 1}
    lines = first.log.splitlines()
    assert lines[0] == f"START RequestId: {first.request_id} Version: $LATEST"
    assert 'got {"action": "echo", "n": 1}' in lines
    assert lines[-2] == f"END RequestId: {first.request_id}"
    assert lines[-1].startswith(f"REPORT RequestId: {first.request_id}\tDuration: ")
    assert base64.b64decode(first.log_tail_base64).decode() == first.log
    with pytest.raises(KeyError):
        runtime.invocation("no-such-request")


def test_large_events_and_results_pass_whole_and_each_log_is_its_own(
    runtime: LambdaRuntime, code: bytes
) -> None:
    """An event and a result near Lambda's 6 MB synchronous limit (non-ASCII too) reach the handler and
    come back whole; a warm worker's next invocation logs only its own lines."""
    blob = "é" * 2_000_000 + "x" * 1_000_000  # 3 million characters, 5 MB as UTF-8
    first = runtime.invoke(spec(code), {"action": "big", "blob": blob})
    assert first.function_error is None
    assert json.loads(first.payload) == {"blob": blob, "length": len(blob)}
    second = runtime.invoke(spec(code), {"action": "echo", "n": 2})
    assert not second.cold_start
    assert '"action": "big"' in first.log
    assert '"action": "big"' not in second.log and 'got {"action": "echo", "n": 2}' in second.log


def test_code_is_unpacked_once_per_sha(runtime: LambdaRuntime, code: bytes) -> None:
    root = runtime.task_root(spec(code))
    assert root.name == spec(code).code_sha256_hex
    assert (root / "app.py").read_text() == HANDLER
    assert runtime.task_root(spec(code, name="again")) == root


def test_a_package_that_is_not_a_zip_is_an_error(runtime: LambdaRuntime) -> None:
    with pytest.raises(LambdaRuntimeError, match="not a zip file"):
        runtime.invoke(spec(b"not a zip"), {})


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="timeout must be positive"):
        spec(b"x", timeout_s=0)


def count(runtime: LambdaRuntime, code: bytes, environment: dict[str, str] | None = None) -> dict[str, int]:
    function = spec(code) if environment is None else spec(code, environment=environment)
    invocation = runtime.invoke(function, {"action": "count"})
    assert invocation.function_error is None, invocation.payload
    return dict(json.loads(invocation.payload))


def test_warm_workers_keep_module_state(runtime: LambdaRuntime, code: bytes) -> None:
    first = runtime.invoke(spec(code), {"action": "count"})
    second = runtime.invoke(spec(code), {"action": "count"})
    assert first.cold_start and not second.cold_start
    assert "init ran" in first.log and "init ran" not in second.log
    assert "\tInit Duration: " in first.log.splitlines()[-1]
    assert json.loads(first.payload)["invokes"] == 1
    assert json.loads(second.payload) == {"invokes": 2, "pid": json.loads(first.payload)["pid"]}
    assert first.log_stream_name == second.log_stream_name
    assert runtime.workers("probe") == 1


def test_a_timeout_or_a_new_configuration_gets_a_fresh_worker(runtime: LambdaRuntime, code: bytes) -> None:
    first = count(runtime, code)
    assert first["invokes"] == 1
    assert count(runtime, code, environment={"GREETING": "other"})["invokes"] == 1
    assert runtime.workers("probe") == 2
    # This reuses the first worker (its third invoke) and kills it at the timeout.
    runtime.invoke(spec(code, timeout_s=0.5), {"action": "sleep", "seconds": 2, "marker": "/dev/null"})
    assert runtime.workers("probe") == 1
    fresh = count(runtime, code)
    assert fresh["invokes"] == 1 and fresh["pid"] != first["pid"]
    runtime.close()
    assert runtime.workers() == 0
    assert count(runtime, code)["invokes"] == 1


def test_concurrent_invokes_get_their_own_workers(runtime: LambdaRuntime, code: bytes) -> None:
    import threading

    errors: list[str | None] = []

    def slow() -> None:
        invocation = runtime.invoke(spec(code), {"action": "sleep", "seconds": 0.5, "marker": "/dev/null"})
        errors.append(invocation.function_error)

    callers = [threading.Thread(target=slow) for _ in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert errors == [None, None]
    assert runtime.workers("probe") == 2


def test_idle_and_dead_workers_are_never_reused(tmp_path: Path, code: bytes) -> None:
    """A worker idle longer than `idle_s` is discarded, at the next invoke of its own function or at the
    next sweep (at most SWEEP_INTERVAL_S apart) by any function's; a worker that died while idle is
    replaced; the most recently released worker is the one reused."""
    import os
    import signal
    import threading
    import time

    from harness.lambda_runtime.runtime import SWEEP_INTERVAL_S

    runtime = LambdaRuntime(endpoint_url=FAKE_ENDPOINT, cache_dir=tmp_path / "code", idle_s=0.3)
    try:
        # Two workers: the slow invoke holds the first while the second starts and answers; the first
        # is released last, so it is the one reused next.
        results: list[dict[str, int]] = []
        slow = threading.Thread(
            target=lambda: runtime.invoke(
                spec(code), {"action": "sleep", "seconds": 2.0, "marker": str(tmp_path / "m")}
            )
        )
        slow.start()
        time.sleep(0.3)
        results.append(count(runtime, code))  # a second worker, released long before the first
        slow.join()
        assert runtime.workers("probe") == 2
        last_released = count(runtime, code)
        assert last_released["pid"] != results[0]["pid"]  # the slow one's worker, released after
        # Dead while idle: the next invoke does not get it.
        os.kill(last_released["pid"], signal.SIGKILL)
        time.sleep(0.2)
        after_kill = count(runtime, code)
        assert after_kill["pid"] != last_released["pid"]
        assert runtime.workers("probe") == 1
        # Idle past idle_s: not reused by its own function.
        time.sleep(0.5)
        fresh = count(runtime, code)
        assert fresh["invokes"] == 1 and fresh["pid"] != after_kill["pid"]
        assert runtime.workers("probe") == 1
        # Another function's invoke after the sweep interval discards it too.
        time.sleep(max(0.5, SWEEP_INTERVAL_S))
        other = spec(code, name="other", arn="arn:aws:lambda:us-east-1:123456789012:function:other")
        assert runtime.invoke(other, {"action": "count"}).function_error is None
        assert runtime.workers("probe") == 0 and runtime.workers("other") == 1
    finally:
        runtime.close()


def test_init_errors(runtime: LambdaRuntime) -> None:
    broken = zip_sources({"app.py": "raise ValueError('bad config')\ndef handler(e, c):\n    return 1\n"})
    invocation = runtime.invoke(spec(broken), {})
    assert invocation.function_error == "Unhandled"
    assert json.loads(invocation.payload)["errorType"] == "ValueError"
    assert runtime.workers("probe") == 0, "a sandbox whose init failed is discarded"
    syntax = zip_sources({"app.py": "def handler(e, c)\n    return 1\n"})
    assert json.loads(runtime.invoke(spec(syntax), {}).payload)["errorType"] == "Runtime.UserCodeSyntaxError"
