"""Load benchmark of `serve`: today's server (main's stdlib one) and this one, side by side, with wrk.

    .venv/bin/python benchmarks/serve_load.py [--model-dir DIR] [--seconds 3] [--levels 1,4,16,64,256]

What it runs, in one go:
- the baseline: `container/` as it is on the `--baseline-ref` branch (default `main`), extracted with
  `git archive` into a temporary folder and started as `container/serve`;
- the candidate: this checkout's `container/serve`, with its defaults (workers = cores, batching on)
  and, with `--variants`, the same with batching off;
- through the local API Gateway (`harness.gateway.ApiGateway`, the emulator's Lambda runtime running a
  proxy that forwards the body to the candidate server on one keep-alive connection per warm worker,
  as boto3's connection pool does in the real proxy), unless `--no-gateway`.
Each server is started on the same model (`--model-dir`, else the tiny preset trained here once on
CLINC150's 10 intents) and warmed up, then wrk (Debian's package, installed with apt-get when absent)
keeps N keep-alive connections busy with one query per request for `--seconds` at each concurrency N.

The gateway path gets `--gateway-warmup` seconds of unmeasured load at each level first: the proxy
Lambda starts a worker per concurrent request (AWS's scale-up), and those cold starts are not the
path's cost per request. Printed: one row per server and concurrency: queries/s, p50, p99 (wrk's
latency distribution), errors (socket errors + non-2xx answers), the ratios against the baseline, and
the CPU milliseconds each request cost each part of the path (the server's processes; on the gateway
path also the gateway, a thread of this process, and the Lambda workers), read from /proc: on a
saturated machine p50 is about clients x CPU per request / cores, so this column says why a path
saturates where it does. Runs on whatever cores the machine has; wrk takes one thread per 64
connections, at most 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the harness and the tests' helpers, when run as a script
QUERY = "what is the weather like tomorrow"
LUA = """
wrk.method = "POST"
wrk.body = '{"inputs": "%s"}'
wrk.headers["Content-Type"] = "application/json"
"""


@dataclass(frozen=True)
class Row:
    server: str
    concurrency: int
    qps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    # CPU milliseconds per request in each part of the path (the server's processes, the gateway
    # thread's process, the Lambda workers), read from /proc around the measured run.
    cpu_ms: dict[str, float] = field(default_factory=dict)


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is absent: installing Debian's package", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed")
    return found


def process_tree(root: int) -> list[tuple[int, str]]:
    """(pid, command line) of every descendant of `root`."""
    listing = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    children: dict[int, list[tuple[int, str]]] = {}
    for line in listing.splitlines():
        fields = line.split(None, 2)
        if len(fields) == 3:
            children.setdefault(int(fields[1]), []).append((int(fields[0]), fields[2]))
    found, todo = [], [root]
    while todo:
        for pid, args in children.get(todo.pop(), []):
            found.append((pid, args))
            todo.append(pid)
    return found


def server_pids(pid: int) -> list[int]:
    """A server's process and its workers."""
    return [pid, *(child for child, _ in process_tree(pid))]


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each process (all its threads) that still runs."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / tick
    return seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def train_tiny(work: Path) -> Path:
    """The tiny preset trained with container/train on CLINC150's 10 intents; returns the model folder."""
    from harness.datasets import clinc10_intents, clinc150_split
    from tests.container.conftest import make_opt_ml, run_train

    intents = clinc10_intents()
    root = make_opt_ml(work / "train", clinc150_split("train", intents), clinc150_split("val", intents))
    result = run_train(root, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"training failed:\n{result.stderr[-2000:]}")
    return root / "model"


def baseline_container(ref: str, work: Path) -> Path:
    """`container/` as it is at `ref` (git archive), so today's server runs beside this one."""
    target = work / "baseline"
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "container"], check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target / "container"


@contextmanager
def serve_process(
    container: Path, model_dir: Path, work: Path, env: dict[str, str]
) -> Iterator[tuple[str, int]]:
    """`container/serve` on a fresh /opt/ml whose model is `model_dir`; yields (URL, pid) once healthy."""
    opt_ml = Path(tempfile.mkdtemp(dir=work))
    (opt_ml / "model").symlink_to(model_dir)
    port = free_port()
    full_env = {**os.environ, "SAGEMAKER_BASE_DIR": str(opt_ml), "SAGEMAKER_BIND_TO_PORT": str(port), **env}
    log = (work / f"serve-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(container / "serve")], env=full_env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"serve did not become healthy; see {log.name}")
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        for _ in range(20):  # warm up every worker's onnxruntime session
            requests.post(f"{url}/invocations", json={"inputs": QUERY}, timeout=30).raise_for_status()
        yield url, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


PROXY_SOURCE = """
import http.client, json, urllib.parse

TARGET = urllib.parse.urlsplit(%r)
_connection = None  # one keep-alive connection per warm worker, as boto3's pool keeps on AWS


def _post(body):
    global _connection
    for attempt in (1, 2):
        if _connection is None:
            _connection = http.client.HTTPConnection(TARGET.hostname, TARGET.port, timeout=25)
        try:
            _connection.request("POST", TARGET.path, body=body, headers={"Content-Type": "application/json"})
            answer = _connection.getresponse()
            return answer.status, answer.read()
        except (http.client.HTTPException, OSError):
            _connection.close()
            _connection = None  # the server closed an idle connection: open a new one, once
            if attempt == 2:
                raise


def handler(event, context):
    status, body = _post((event.get("body") or "").encode("utf-8"))
    headers = {"Content-Type": "application/json"}
    return {"statusCode": status, "headers": headers, "body": body.decode("utf-8")}
"""


@contextmanager
def through_gateway(server_url: str) -> Iterator[tuple[str, str]]:
    """The local API Gateway with an API whose Lambda proxy forwards to `server_url`; yields (url, key)."""
    from harness.emulator import EmbeddedEmulator
    from harness.gateway import ApiGateway
    from tests.harness.test_seams_apigateway import deploy_api

    with EmbeddedEmulator() as emulator:
        # Throttles far above what wrk sends: the figures are the path's cost, not API Gateway's 429s.
        outputs = deploy_api(
            emulator,
            "bench-api",
            PROXY_SOURCE % f"{server_url}/invocations",
            throttle={"RateLimit": 100_000, "BurstLimit": 50_000},
            stage_throttle=(100_000, 50_000),
        )
        key = str(
            emulator.client("apigateway").get_api_key(apiKey=outputs["KeyId"], includeValue=True)["value"]
        )
        with ApiGateway(emulator.endpoint_url) as gateway:
            url = f"{gateway.base_url(outputs['ApiId'], 'v1')}/items"
            for _ in range(10):
                answer = requests.post(
                    url, data=json.dumps({"inputs": QUERY}), headers={"x-api-key": key}, timeout=30
                )
                if answer.status_code != 200:
                    raise SystemExit(f"the gateway path answered {answer.status_code}: {answer.text[:300]}")
            yield url, key


_LATENCY = re.compile(r"^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(
    wrk: str,
    url: str,
    concurrency: int,
    seconds: int,
    script: Path,
    key: str | None,
    parts: dict[str, list[int]] | None = None,
) -> Row:
    """wrk at `concurrency` for `seconds`; the processes of each of `parts` (name -> pids) are measured
    for their CPU per request."""
    threads = max(1, min(2, concurrency // 64 or 1))
    command = [
        wrk,
        "-t",
        str(threads),
        "-c",
        str(concurrency),
        "-d",
        f"{seconds}s",
        "--latency",
        "--timeout",
        "60s",  # SageMaker's invocation timeout: a slower answer is an error
        "-s",
        str(script),
    ]
    if key is not None:
        command += ["-H", f"x-api-key: {key}"]
    groups = {pid: name for name, pids in (parts or {}).items() for pid in pids}
    before = cpu_seconds(list(groups))
    output = subprocess.run([*command, url], check=True, capture_output=True, text=True).stdout
    after = cpu_seconds(list(groups))
    latencies = {pct: float(value) * _UNITS[unit] for pct, value, unit in _LATENCY.findall(output)}
    total = int(re.search(r"([0-9]+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) ([0-9]+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: ([0-9]+)", output)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    seconds_run = float(seconds)
    cpu: dict[str, float] = {}
    for pid, spent in after.items():
        name = groups[pid]
        cpu[name] = cpu.get(name, 0.0) + (spent - before.get(pid, spent)) * 1000 / max(1, total)
    row = Row("", concurrency, total / seconds_run, latencies["50"], latencies["99"], errors, total)
    return replace(row, cpu_ms=cpu)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model-dir", type=Path, help="a trained model folder (default: train the tiny preset)"
    )
    parser.add_argument("--seconds", type=int, default=3, help="seconds per concurrency level")
    parser.add_argument("--levels", default="1,4,16,64,256", help="concurrency levels")
    parser.add_argument("--baseline-ref", default="main", help="the git ref of today's server")
    parser.add_argument("--variants", action="store_true", help="also run the new server with batching off")
    parser.add_argument("--no-gateway", action="store_true", help="skip the API Gateway path")
    parser.add_argument(
        "--gateway-warmup",
        type=int,
        default=2,
        help="seconds of unmeasured load on the gateway path at each level first (0: none), so that the "
        "Lambda workers that level needs are started",
    )
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    wrk = ensure_wrk()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="serve-load-") as temp:
        work = Path(temp)
        model_dir = args.model_dir.resolve() if args.model_dir else train_tiny(work)
        script = work / "post.lua"
        script.write_text(LUA % QUERY, encoding="utf-8")
        servers: list[tuple[str, Path, dict[str, str]]] = [
            ("baseline", baseline_container(args.baseline_ref, work), {}),
            ("new", REPO / "container", {}),
        ]
        if args.variants:
            servers.append(("new, batching off", REPO / "container", {"BYOC_BATCHING": "off"}))
        with ExitStack() as stack:
            # All servers run at once and take turns at each level, so that a change in the machine's
            # other load hits them alike.
            urls = {
                name: stack.enter_context(serve_process(c, model_dir, work, env)) for name, c, env in servers
            }
            gateway = None if args.no_gateway else stack.enter_context(through_gateway(urls["new"][0]))
            for level in levels:
                for name, (url, pid) in urls.items():
                    server = {"server": server_pids(pid)}
                    row = run_wrk(wrk, f"{url}/invocations", level, args.seconds, script, None, server)
                    rows.append(replace(row, server=name))
                    print_row(rows[-1])
                if gateway is not None:
                    if args.gateway_warmup > 0:
                        # Unmeasured: each concurrent request needs a warm Lambda worker, and the first
                        # at a level are cold starts (AWS's scale-up), not the path's cost per request.
                        run_wrk(wrk, gateway[0], level, args.gateway_warmup, script, gateway[1])
                    # The gateway is a thread of this process; the Lambda workers are its children.
                    measured = {
                        "server": server_pids(urls["new"][1]),
                        "gateway": [os.getpid()],
                        "Lambda": [pid for pid, args in process_tree(os.getpid()) if "bootstrap.py" in args],
                    }
                    row = run_wrk(wrk, gateway[0], level, args.seconds, script, gateway[1], measured)
                    rows.append(replace(row, server="new via API Gateway"))
                    print_row(rows[-1])
    print()
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps([row.__dict__ for row in rows], indent=2), encoding="utf-8")
    return 0


def print_row(row: Row) -> None:
    print(
        f"  {row.server:<24} c={row.concurrency:<4} {row.qps:8.1f} q/s  p50 {row.p50_ms:7.2f} ms  "
        f"p99 {row.p99_ms:8.2f} ms  errors {row.errors}  CPU ms/request {_cpu_text(row)}",
        file=sys.stderr,
        flush=True,
    )


def _cpu_text(row: Row) -> str:
    return " + ".join(f"{name} {row.cpu_ms[name]:.2f}" for name in CPU_PARTS if name in row.cpu_ms) or "-"


CPU_PARTS = ("server", "gateway", "Lambda")


def print_table(rows: list[Row]) -> None:
    """The rows as a Markdown table, with ratios against the baseline and, on the gateway path, the
    p50 it adds to calling the new server directly at the same concurrency (the goal: at most 5 ms)."""
    baseline = {row.concurrency: row for row in rows if row.server == "baseline"}
    direct = {row.concurrency: row for row in rows if row.server == "new"}
    print(
        "| server | clients | queries/s | p50 ms | p99 ms | errors | q/s vs baseline | p50 vs baseline "
        "| p50 over direct | CPU ms per request |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        base = baseline.get(row.concurrency)
        qps_ratio = f"{row.qps / base.qps:.1f}x" if base and base.qps else "-"
        p50_ratio = _speed(base.p50_ms, row.p50_ms) if base and row.p50_ms else "-"
        if row.server == "baseline":
            qps_ratio = p50_ratio = "1.0x"
        plain = direct.get(row.concurrency)
        added = f"+{row.p50_ms - plain.p50_ms:.2f} ms" if plain and "Gateway" in row.server else "-"
        print(
            f"| {row.server} | {row.concurrency} | {row.qps:.0f} | {row.p50_ms:.2f} | {row.p99_ms:.2f} | "
            f"{row.errors} | {qps_ratio} | {p50_ratio} | {added} | {_cpu_text(row)} |"
        )


def _speed(base_ms: float, ms: float) -> str:
    """'4.5x faster' or '1.3x slower': the p50 against the baseline's."""
    return f"{base_ms / ms:.1f}x faster" if ms <= base_ms else f"{ms / base_ms:.1f}x slower"


if __name__ == "__main__":
    sys.exit(main())
