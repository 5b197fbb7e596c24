"""The main job's and the scenario set's wall times: a baseline commit and the current one, side by side.

Each variant runs from a fresh clone of this repository at its commit (no `container/wheels`, no
caches: what a user who just cloned it has), with its own empty cache folder (`MLOPS_CACHE_DIR`), and
this project's `.venv` (its packages; the variant's own code comes first on `PYTHONPATH`):

- `mlops run --runtime process --json` `--runs` times in a row (the first run is a fresh clone's first
  run; later ones find what the first left: the build cache, the training cache), printing each run's
  wall time and stage times;
- with `--scenarios`, `mlops scenario run scenarios/ --runtime process --parallel 2` once per variant,
  printing its wall time and, where the variant reports them, the training cache hits.

    .venv/bin/python benchmarks/main_job.py --baseline 6f20f91 --runs 2
    .venv/bin/python benchmarks/main_job.py --baseline 6f20f91 --runs 2 --scenarios
    .venv/bin/python benchmarks/main_job.py --baseline 6f20f91 --runs 2 --scenarios --scenarios-of current

The current variant is HEAD (commit your work first). Figures are wall seconds on this machine; run it
on a quiet machine, both variants in one run, so that they meet the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STAGES = ("Source", "Build", "Train", "Approve", "Register", "PublishApi", "CallApi")


@dataclass
class RunFigures:
    wall_s: float
    status: str
    stages: dict[str, float]
    cache_hit: bool | None


@dataclass
class Variant:
    name: str
    commit: str
    clone: Path
    cache: Path
    runs: list[RunFigures] = field(default_factory=list)
    scenarios_s: float | None = None
    scenarios_passed: str = ""
    scenario_cache_hits: int | None = None


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def prepare(name: str, ref: str, root: Path) -> Variant:
    commit = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    clone = root / name
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(REPO), str(clone)], check=True)
    git("checkout", "--quiet", "--detach", commit, cwd=clone)
    for key, value in (("user.name", "benchmark"), ("user.email", "benchmark@example.com")):
        git("config", key, value, cwd=clone)
    return Variant(name, commit[:12], clone, root / f"cache-{name}")


def environment(variant: Variant) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{variant.clone}{os.pathsep}{variant.clone / 'container'}"
    env["MLOPS_CACHE_DIR"] = str(variant.cache)
    return env


MLOPS = [sys.executable, "-c", "import sys; from mlops.cli import app; sys.argv[0] = 'mlops'; app()"]


def run_main_job(variant: Variant, index: int, root: Path) -> RunFigures:
    work = root / f"work-{variant.name}-{index}"
    command = [
        *MLOPS,
        "run",
        "--runtime",
        "process",
        "--json",
        "--source",
        str(variant.clone),
        "--work-dir",
        str(work),
        "--report-dir",
        str(work / "report"),
    ]
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=variant.clone, env=environment(variant), capture_output=True, text=True, check=False
    )
    wall = time.monotonic() - started
    try:
        summary = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        print(f"{variant.name} run {index}: no JSON summary (exit {done.returncode})\n{done.stderr[-3000:]}")
        return RunFigures(wall, "no summary", {}, None)
    hit = summary.get("training_cache_hit")
    return RunFigures(wall, str(summary.get("status")), dict(summary.get("stage_timings_s", {})), hit)


def run_scenarios(variant: Variant) -> None:
    command = [*MLOPS, "scenario", "run", "scenarios/", "--runtime", "process", "--parallel", "2"]
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=variant.clone, env=environment(variant), capture_output=True, text=True, check=False
    )
    variant.scenarios_s = time.monotonic() - started
    statuses = re.findall(r"^\s*(passed|failed|error)\s+\S+\s+\(", done.stdout, re.MULTILINE)
    variant.scenarios_passed = f"{statuses.count('passed')}/{len(statuses)} passed"
    hits = re.findall(r"(\d+) hits?\b", done.stdout)
    variant.scenario_cache_hits = sum(int(h) for h in hits) if hits else None
    if done.returncode != 0:
        print(f"{variant.name}: the scenario set exited {done.returncode}\n{done.stdout[-3000:]}")


def table(variants: list[Variant]) -> str:
    heads = [f"{v.name} run {i + 1}" for v in variants for i in range(len(v.runs))]
    runs = [run for variant in variants for run in variant.runs]
    rows = [("", heads), ("wall (command)", [f"{r.wall_s:.1f}" for r in runs])]
    for stage in STAGES:
        rows.append((stage, [f"{r.stages[stage]:.1f}" if stage in r.stages else "-" for r in runs]))
    rows.append(("status", [r.status for r in runs]))
    rows.append(("training cache hit", ["-" if r.cache_hit is None else str(r.cache_hit) for r in runs]))
    width = max(len(label) for label, _ in rows)
    col = max(12, *(len(h) for h in heads))
    lines = [f"{label:<{width}}  " + "  ".join(f"{c:>{col}}" for c in row) for label, row in rows]
    base, current = variants[0], variants[-1]
    for i in range(min(len(base.runs), len(current.runs))):
        ratio = base.runs[i].wall_s / current.runs[i].wall_s if current.runs[i].wall_s else float("nan")
        lines.append(f"run {i + 1}: {base.name} / {current.name} wall = {ratio:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", required=True, help="the baseline commit (e.g. the last landed main)")
    parser.add_argument("--current", default="HEAD")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--scenarios", action="store_true", help="also time the scenario set")
    parser.add_argument(
        "--scenarios-of",
        choices=("both", "current"),
        default="both",
        help="whose scenario set to time (current: a known baseline figure saves its long run)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-main-job-") as folder:
        root = Path(folder)
        variants = [prepare("baseline", args.baseline, root), prepare("current", args.current, root)]
        for variant in variants:
            print(f"{variant.name}: {variant.commit}", flush=True)
        # Interleaved (baseline 1, current 1, baseline 2, ...) so that both meet the same load.
        for index in range(1, args.runs + 1):
            for variant in variants:
                variant.runs.append(run_main_job(variant, index, root))
                last = variant.runs[-1]
                print(f"  {variant.name} run {index}: {last.wall_s:.1f} s ({last.status})", flush=True)
        print(table(variants))
        if args.scenarios:
            for variant in variants if args.scenarios_of == "both" else variants[-1:]:
                run_scenarios(variant)
                print(
                    f"scenario set, {variant.name}: {variant.scenarios_s:.0f} s wall, "
                    f"{variant.scenarios_passed}, training cache hits: {variant.scenario_cache_hits}",
                    flush=True,
                )
            base, current = variants
            if base.scenarios_s and current.scenarios_s:
                ratio = base.scenarios_s / current.scenarios_s
                print(f"scenario set: baseline / current wall = {ratio:.2f}x")


if __name__ == "__main__":
    main()
