"""`mlops demo`: the container's own demo as plain processes (train on real data, serve, answer queries).

It runs exactly the image's `container/train` and `container/serve` with a moved /opt/ml
(SAGEMAKER_BASE_DIR), on the real CLINC150 `clinc10` subset (see harness/datasets.py).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import typer

from harness import datasets

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTAINER_DIR = REPO_ROOT / "container"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _prepare_opt_ml(root: Path, intents: list[str]) -> None:
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({"model_preset": "tiny"}))
    (config / "inputdataconfig.json").write_text(
        json.dumps({name: {"ContentType": "text/csv"} for name in ("training", "validation")})
    )
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    datasets.write_csv(root / "input/data/training/train.csv", datasets.clinc150_split("train", intents))
    datasets.write_csv(root / "input/data/validation/val.csv", datasets.clinc150_split("val", intents))


def _wait_for_ping(url: str, server: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"serve exited with code {server.returncode} before answering /ping")
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"serve did not answer /ping within {timeout_s:.0f} s")


def demo(
    queries: int = typer.Option(8, min=1, max=100, help="How many held-out test queries to send."),
    keep: bool = typer.Option(False, help="Keep the temporary /opt/ml tree and print its path."),
) -> None:
    """Train the tiny GPT-Neo on 10 CLINC150 intents, serve it, and answer held-out queries."""
    intents = datasets.clinc10_intents()
    workdir = Path(tempfile.mkdtemp(prefix="mlops-demo-"))
    root = workdir / "opt_ml"
    _prepare_opt_ml(root, intents)
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(root)}
    typer.echo(f"demo: training on {len(intents)} intents under {root}")
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(CONTAINER_DIR / "train")], env=env, check=False)
    if result.returncode != 0:
        failure = root / "output" / "failure"
        reason = failure.read_text() if failure.exists() else "(no failure file)"
        typer.echo(f"demo: training failed (exit {result.returncode}): {reason}", err=True)
        raise typer.Exit(1)
    typer.echo(f"demo: trained in {time.monotonic() - started:.1f} s")

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, str(CONTAINER_DIR / "serve")], env={**env, "SAGEMAKER_BIND_TO_PORT": str(port)}
    )
    try:
        _wait_for_ping(url, server)
        test = datasets.clinc150_split("test", intents)[:: max(1, 300 // queries)][:queries]
        response = requests.post(
            f"{url}/invocations", json={"inputs": [example.query for example in test]}, timeout=60
        )
        response.raise_for_status()
        predictions = response.json()["predictions"]
        correct = 0
        for example, prediction in zip(test, predictions, strict=True):
            ok = prediction["intent"] == example.intent
            correct += ok
            mark = "ok " if ok else "BAD"
            typer.echo(f"  {mark} {example.query!r} -> {prediction['intent']} (expected {example.intent})")
        typer.echo(f"demo: {correct}/{len(test)} correct")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        if keep:
            typer.echo(f"demo: kept {workdir}")
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
