"""The harness's own costs, a baseline commit and the current tree side by side: a stack's start and
deploy, and what the local API Gateway path adds to a prediction.

For each variant (the baseline from a fresh clone at its commit, the current one from this working
tree) a child process of this script, with the variant's code first on `PYTHONPATH`, measures:

- **stack start + deploy**: `LocalAws.start()` and `deploy()` (the assets and platform stacks, through
  the deployer's own code) in a fresh process, after the imports (reported apart: moto's import is
  paid once per process, a scenario worker pays it once for all its scenarios);
- **the prediction path**, one client, one query a request, `--requests` sequential keep-alive requests
  each, p50 and p99 in ms: `direct` (POST /invocations of the serving container), `invoke_endpoint`
  (boto3 -> the emulator's SageMaker runtime seam -> the container) and `gateway` (HTTP -> the local
  API Gateway -> the deployer's own `api_proxy` Lambda, warm, in the harness's Lambda runtime ->
  InvokeEndpoint -> the container). `gateway - direct` is what the issue's goal bounds (5 ms).

The model is a trained tiny model folder (`--model-dir`, e.g. a training cache entry's `model/`).

    .venv/bin/python benchmarks/harness_overhead.py --baseline b7ef4da --model-dir PATH/TO/model
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
QUERY = "what's the weather like today"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def timed(call: Any, count: int) -> dict[str, float]:
    for _ in range(5):  # warm: connections, the Lambda worker, onnxruntime's first runs
        call()
    values = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        values.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": statistics.median(values), "p99_ms": percentile(values, 0.99)}


def measure_stack() -> dict[str, float]:
    """The first start pays moto's import (once per process); the second is what a scenario worker
    pays for each later scenario."""
    started = time.perf_counter()
    from harness.local import LocalAws, LocalAwsOptions

    figures = {"import_s": time.perf_counter() - started}
    for run in ("first", "second"):
        with tempfile.TemporaryDirectory() as folder:
            aws = LocalAws(LocalAwsOptions(work_dir=Path(folder)))
            begin = time.perf_counter()
            aws.start()
            up = time.perf_counter()
            aws.deploy()
            deployed = time.perf_counter()
            aws.stop()
        figures[f"{run}_start_s"] = up - begin
        figures[f"{run}_deploy_s"] = deployed - up
        figures[f"{run}_start_and_deploy_s"] = deployed - begin
    return figures


def measure_prediction(root: Path, model_dir: Path, count: int) -> dict[str, dict[str, float]]:
    import requests

    from harness.gateway import ApiGateway
    from harness.lambda_runtime import zip_sources
    from tests.conformance.sagemaker_helpers import deploy_config, wait_endpoint
    from tests.harness.planes import running_harness
    from tests.harness.test_seams_apigateway import CODE_BUCKET, CODE_KEY, api_template

    proxy_source = (root / "deployer" / "lambdas" / "api_proxy.py").read_text(encoding="utf-8")
    app = "import os\nos.environ.setdefault('ENDPOINT_NAME', 'bench')\nfrom api_proxy import handler\n"
    with tempfile.TemporaryDirectory() as folder, running_harness(Path(folder)) as harness:
        # The test stack's proxy role is not the deployed one: IAM is off here (its cost is measured
        # by benchmarks/iam_overhead.py); a baseline older than enforcement has no switch.
        iam = getattr(harness.emulator.context, "iam", None)
        if iam is not None:
            iam.set_enabled(False)
        s3 = harness.client("s3")
        s3.create_bucket(Bucket="bench-models")
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:
            for path in sorted(model_dir.iterdir()):
                tar.add(path, arcname=path.name)
        s3.put_object(Bucket="bench-models", Key="model.tar.gz", Body=archive.getvalue())
        image = harness.image_uri(root)
        config = deploy_config(harness, image, "bench", "s3://bench-models/model.tar.gz")
        sagemaker = harness.client("sagemaker")
        sagemaker.create_endpoint(EndpointName="bench", EndpointConfigName=config)
        described = wait_endpoint(harness, "bench")
        if described["EndpointStatus"] != "InService":
            raise SystemExit(f"the endpoint did not start: {described.get('FailureReason')}")
        (url,) = [
            endpoint.current.serving.url
            for endpoint in harness.plane.endpoints._endpoints.values()
            if endpoint.current is not None
        ]
        body = json.dumps({"inputs": QUERY})
        direct = requests.Session()
        runtime = harness.client("sagemaker-runtime")
        figures = {
            "direct": timed(
                lambda: direct.post(
                    f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}
                ).raise_for_status(),
                count,
            ),
            "invoke_endpoint": timed(
                lambda: runtime.invoke_endpoint(
                    EndpointName="bench", Body=body, ContentType="application/json"
                )["Body"].read(),
                count,
            ),
        }
        s3.create_bucket(Bucket=CODE_BUCKET)
        code = zip_sources({"app.py": app, "api_proxy.py": proxy_source})
        s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=code)
        cloudformation = harness.client("cloudformation")
        template = api_template(
            throttle={"RateLimit": 10000, "BurstLimit": 5000}, stage_throttle=(10000, 5000)
        )
        cloudformation.create_stack(
            StackName="bench-api", TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_NAMED_IAM"]
        )
        stack = cloudformation.describe_stacks(StackName="bench-api")["Stacks"][0]
        outputs = {item["OutputKey"]: item["OutputValue"] for item in stack["Outputs"]}
        key = harness.client("apigateway").get_api_key(apiKey=outputs["KeyId"], includeValue=True)["value"]
        with ApiGateway(harness.emulator.endpoint_url) as gateway:
            api_url = f"{gateway.base_url(outputs['ApiId'], 'v1')}/items"
            client = requests.Session()

            def through_gateway() -> None:
                answer = client.post(
                    api_url, data=body, headers={"x-api-key": key, "Content-Type": "application/json"}
                )
                if answer.status_code != 200:
                    raise SystemExit(f"the API answered {answer.status_code}: {answer.text[:300]}")

            figures["gateway"] = timed(through_gateway, count)
        direct.close()
    return figures


def child(args: argparse.Namespace) -> int:
    root = Path(args.child).resolve()
    figures: dict[str, Any] = {"stack": measure_stack()}
    if args.model_dir:
        figures["prediction"] = measure_prediction(root, Path(args.model_dir), args.requests)
    print("FIGURES " + json.dumps(figures))
    return 0


def run_variant(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(root)]
    command += ["--requests", str(args.requests)]
    if args.model_dir:
        command += ["--model-dir", str(Path(args.model_dir).resolve())]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith("FIGURES ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{root}: the measurement failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return dict(json.loads(lines[-1][len("FIGURES ") :]))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", help="the baseline commit (its fresh clone is measured too)")
    parser.add_argument("--model-dir", help="a trained tiny model folder; without it only the stack is timed")
    parser.add_argument("--requests", type=int, default=200, help="requests per path")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    print(f"load average: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="harness-overhead-") as scratch:
        if args.baseline:
            clone = Path(scratch) / "baseline"
            subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
            subprocess.run(["git", "checkout", "--quiet", args.baseline], cwd=clone, check=True)
            results[f"baseline {args.baseline}"] = run_variant(clone, args)
        results["current"] = run_variant(REPO, args)
    print_table(results)
    return 0


def print_table(results: dict[str, dict[str, Any]]) -> None:
    names = list(results)
    print("| figure | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for item in results[names[-1]]["stack"]:
        cells = " | ".join(f"{results[name]['stack'][item]:.2f}" for name in names)
        print(f"| stack {item} | {cells} |")
    if not all("prediction" in results[name] for name in names):
        return
    for path in ("direct", "invoke_endpoint", "gateway"):
        figures = [results[name]["prediction"][path] for name in names]
        cells = " | ".join(f"{item['p50_ms']:.1f} / {item['p99_ms']:.1f}" for item in figures)
        print(f"| {path} p50 / p99 ms | {cells} |")
    added = []
    for name in names:
        prediction = results[name]["prediction"]
        added.append(f"{prediction['gateway']['p50_ms'] - prediction['direct']['p50_ms']:.1f}")
    print(f"| gateway - direct, p50 ms | {' | '.join(added)} |")


if __name__ == "__main__":
    sys.exit(main())
