"""The main job with IAM enforcement on and off, in one run: wall and stage times side by side.

    .venv/bin/python benchmarks/iam_overhead.py [--runs 2]

Each run is `mlops run --runtime process --json` from this working tree, with its own work folder and a
shared cache folder (`MLOPS_CACHE_DIR`). One warm-up run (enforcement off, not counted) fills the build
and training caches first, so that every counted run finds the same caches and the figures compare the
enforcement, not a first build or a real training job. The counted runs alternate (on, off, off, on,
...) so that both modes meet the same load drift. The goal: on at most 10 % above off.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAGES = ("Source", "Build", "Train", "Approve", "Register", "PublishApi", "CallApi")
GOAL = 1.10


@dataclass(frozen=True)
class Run:
    iam: bool
    wall_s: float
    status: str
    stages: dict[str, float]
    denied: int


def main_job(iam: bool, work: Path, cache: Path) -> Run:
    command = [
        str(REPO / ".venv/bin/mlops"),
        "run",
        "--runtime",
        "process",
        "--json",
        "--work-dir",
        str(work),
    ]
    if not iam:
        command.append("--no-iam")
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, env={**os.environ, "MLOPS_CACHE_DIR": str(cache)}
    )
    wall = time.monotonic() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"mlops run printed no summary (exit {done.returncode}):\n{done.stderr[-3000:]}")
    summary = json.loads(lines[-1])
    return Run(
        iam,
        wall,
        summary["status"],
        summary.get("stage_timings_s", {}),
        len(summary.get("access_denied", [])),
    )


def table(runs: list[Run]) -> str:
    header = "| mode | runs | whole command (s) | " + " | ".join(STAGES) + " | denied |"
    rows = [header, "|" + "---|" * (len(STAGES) + 4)]
    for iam in (True, False):
        mine = [run for run in runs if run.iam == iam]
        stages = [statistics.median(run.stages.get(stage, 0.0) for run in mine) for stage in STAGES]
        wall = statistics.median(run.wall_s for run in mine)
        rows.append(
            f"| IAM {'on' if iam else 'off'} | {len(mine)} | {wall:.1f} | "
            + " | ".join(f"{value:.1f}" for value in stages)
            + f" | {sum(r.denied for r in mine)} |"
        )
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="counted runs per mode (default 2)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    with tempfile.TemporaryDirectory(prefix="iam-overhead-") as scratch:
        root = Path(scratch)
        cache = root / "cache"
        warm = main_job(False, root / "warm-up", cache)
        print(f"warm-up (IAM off, not counted): {warm.wall_s:.1f} s, {warm.status}", flush=True)
        order = [index % 4 in (0, 3) for index in range(2 * args.runs)]  # on, off, off, on, ...
        runs = []
        for index, iam in enumerate(order):
            run = main_job(iam, root / f"run-{index}", cache)
            print(
                f"run {index + 1}: IAM {'on' if iam else 'off'} {run.wall_s:.1f} s, {run.status}", flush=True
            )
            runs.append(run)
    failed = [run for run in runs if run.status != "succeeded"]
    print()
    print(table(runs))
    on = statistics.median(run.wall_s for run in runs if run.iam)
    off = statistics.median(run.wall_s for run in runs if not run.iam)
    ratio = on / off
    verdict = "met" if ratio <= GOAL else "NOT met"
    print(f"\non / off (median whole command): {ratio:.3f} (goal <= {GOAL:.2f}: {verdict})")
    if failed:
        print(f"{len(failed)} run(s) did not succeed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
