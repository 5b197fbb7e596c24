"""Step caching of training jobs (harness/compute/training_cache.py) on the real process runtime.

Modelled on SageMaker Pipelines' step caching ("Caching pipeline steps", SageMaker developer guide):
a step whose arguments equal an earlier successful run's reuses that run's outputs. Here the
arguments are the image digest, the input data, the hyperparameters, the channel configuration and
the environment: the job trains again when any one of them changes.

The "image" is a small source tree registered with the process runtime whose `container/train` writes
a model that depends on every input, and counts its runs, so the test sees whether it really ran.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.compute.container_runtime import ContainerProcess, PythonProgram, ResolvedImage
from harness.compute.process import ProcessRuntime
from harness.compute.training_cache import (
    CACHE_HIT_MARKER,
    CachingRuntime,
    ReusedTraining,
    TrainingCache,
    cache_key,
    reused_from,
)

TRAIN = textwrap.dedent(
    """\
    #!/usr/bin/env python3
    import hashlib, json, os, pathlib
    base = pathlib.Path(os.environ["SAGEMAKER_BASE_DIR"])
    hyper = json.loads((base / "input/config/hyperparameters.json").read_text())
    data = b"".join(p.read_bytes() for p in sorted((base / "input/data").rglob("*.csv")))
    runs = pathlib.Path(os.environ["RUN_COUNTER"])
    runs.write_text(str(int(runs.read_text() or "0") + 1) if runs.exists() else "1")
    digest = hashlib.sha256(data + json.dumps(hyper, sort_keys=True).encode()).hexdigest()
    (base / "model").mkdir(exist_ok=True)
    (base / "model/weights.txt").write_text(digest + "%(flavour)s")
    print("epoch=1; train_loss=0.5;")
    print("accuracy=0.9;")
    """
)


def make_image(root: Path, flavour: str) -> Path:
    container = root / "container"
    container.mkdir(parents=True)
    (container / "train").write_text(TRAIN % {"flavour": flavour})
    (container / "serve").write_text("#!/usr/bin/env python3\n")
    return root


def prepare(base_dir: Path, hyperparameters: dict[str, str], rows: str) -> Path:
    """A job's /opt/ml as TrainingJob._prepare leaves it: config files and a downloaded channel."""
    (base_dir / "input" / "config").mkdir(parents=True)
    (base_dir / "input" / "data" / "training").mkdir(parents=True)
    (base_dir / "model").mkdir()
    config = base_dir / "input" / "config"
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text(json.dumps({"training": {"TrainingInputMode": "File"}}))
    (base_dir / "input" / "data" / "training" / "train.csv").write_text(rows)
    return base_dir


class Jobs:
    """Runs jobs named job-1, job-2, ... under a work dir laid out as the training runner lays it out."""

    def __init__(self, tmp_path: Path, runtime: CachingRuntime) -> None:
        self.tmp_path, self.runtime, self.count = tmp_path, runtime, 0

    def run(
        self, image: ResolvedImage, hyperparameters: dict[str, str], rows: str
    ) -> tuple[ContainerProcess, Path, Path]:
        self.count += 1
        job_dir = self.tmp_path / "training-jobs" / "123456789012" / "us-east-1" / f"job-{self.count}"
        base_dir = prepare(job_dir / "opt" / "ml", hyperparameters, rows)
        log = job_dir / "train.log"
        process = self.runtime.start_training(image, base_dir, log, {"RUN_COUNTER": str(self.counter)})
        assert process.wait(60) == 0, log.read_text()
        return process, base_dir, log

    @property
    def counter(self) -> Path:
        return self.tmp_path / "runs"

    def real_runs(self) -> int:
        return int(self.counter.read_text()) if self.counter.exists() else 0


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Jobs, ResolvedImage, ResolvedImage]:
    process = ProcessRuntime()
    first = process.resolve(f"repo@{process.register(make_image(tmp_path / 'image-a', 'a'))}")
    second = process.resolve(f"repo@{process.register(make_image(tmp_path / 'image-b', 'b'))}")
    assert first.digest != second.digest
    runtime = CachingRuntime(process, TrainingCache(tmp_path / "cache"))
    return Jobs(tmp_path, runtime), first, second


HYPER = {"epochs": "8", "seed": "42"}
ROWS = "Query,Intent\nwhat is the weather,weather\n"


def test_a_matching_job_reuses_the_earlier_model_and_log(
    setup: tuple[Jobs, ResolvedImage, ResolvedImage],
) -> None:
    jobs, image, _ = setup
    first, first_dir, first_log = jobs.run(image, HYPER, ROWS)
    assert not isinstance(first, ReusedTraining) and jobs.real_runs() == 1
    again, again_dir, again_log = jobs.run(image, dict(HYPER), ROWS)
    assert isinstance(again, ReusedTraining) and again.source_job == "job-1"
    assert jobs.real_runs() == 1  # the container did not run a second time
    weights = "model/weights.txt"
    assert (again_dir / weights).read_text() == (first_dir / weights).read_text()
    log = again_log.read_text()
    assert log.startswith(CACHE_HIT_MARKER) and reused_from(log) == "job-1"
    assert log.split("\n", 1)[1] == first_log.read_text()  # metrics are read from the replayed log
    assert reused_from(first_log.read_text()) is None


@pytest.mark.parametrize("change", ["image digest", "data", "hyperparameters"])
def test_changing_any_one_input_trains_again(
    setup: tuple[Jobs, ResolvedImage, ResolvedImage], change: str
) -> None:
    jobs, image, other_image = setup
    jobs.run(image, HYPER, ROWS)
    variants = {
        "image digest": (other_image, HYPER, ROWS),
        "data": (image, HYPER, ROWS + "freeze my account,freeze_account\n"),
        "hyperparameters": (image, {**HYPER, "epochs": "9"}, ROWS),
    }
    process, _, log = jobs.run(*variants[change])
    assert not isinstance(process, ReusedTraining), change
    assert jobs.real_runs() == 2 and not log.read_text().startswith(CACHE_HIT_MARKER)
    # ... and that run is cached in its turn.
    again, _, _ = jobs.run(*variants[change])
    assert isinstance(again, ReusedTraining) and again.source_job == "job-2"


def test_a_failed_run_is_not_cached(tmp_path: Path) -> None:
    process = ProcessRuntime()
    tree = make_image(tmp_path / "image", "x")
    (tree / "container" / "train").write_text("import sys\nprint('boom')\nsys.exit(2)\n")
    image = process.resolve(f"repo@{process.register(tree)}")
    runtime = CachingRuntime(process, TrainingCache(tmp_path / "cache"))
    for name in ("one", "two"):
        base_dir = prepare(tmp_path / name / "opt" / "ml", HYPER, ROWS)
        started = runtime.start_training(image, base_dir, tmp_path / name / "train.log", {})
        assert not isinstance(started, ReusedTraining) and started.wait(60) == 2
    assert not any((tmp_path / "cache").glob("*/meta.json"))


def test_a_replaced_program_runs_even_when_an_entry_exists(
    setup: tuple[Jobs, ResolvedImage, ResolvedImage],
) -> None:
    """An injected fault (harness/faults.py) names the program to run: the cache must not hide it."""
    jobs, image, _ = setup
    jobs.run(image, HYPER, ROWS)
    base_dir = prepare(jobs.tmp_path / "faulty" / "opt" / "ml", HYPER, ROWS)
    failing = PythonProgram("import sys; print('injected'); sys.exit(3)")
    process = jobs.runtime.start_training(image, base_dir, jobs.tmp_path / "faulty.log", {}, failing)
    assert not isinstance(process, ReusedTraining) and process.wait(60) == 3


def test_two_processes_storing_the_same_key_leave_one_whole_entry(tmp_path: Path) -> None:
    """Parallel scenario processes share one cache root: stores are a rename of a complete folder."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.txt").write_text("w")
    log = tmp_path / "train.log"
    log.write_text("epoch=1;\n")
    script = (
        "import sys; from pathlib import Path; from harness.compute.training_cache import TrainingCache; "
        "TrainingCache(Path(sys.argv[1])).store('k' * 64, Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])"
    )
    children = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "cache"), str(model), str(log), job])
        for job in ("job-0", "job-1", "job-2", "job-3")
    ]
    assert [child.wait(60) for child in children] == [0, 0, 0, 0]
    entries = [path for path in (tmp_path / "cache").iterdir()]
    assert [path.name for path in entries] == ["k" * 64]
    entry = TrainingCache(tmp_path / "cache").lookup("k" * 64)
    assert entry is not None and (entry.folder / "model" / "weights.txt").read_text() == "w"
    assert entry.source_job in {f"job-{i}" for i in range(4)}


def _in_thread(call: Callable[[], ContainerProcess]) -> tuple[threading.Thread, list[ContainerProcess]]:
    started: list[ContainerProcess] = []
    thread = threading.Thread(target=lambda: started.append(call()), daemon=True)
    thread.start()
    return thread, started


def test_a_job_waits_for_a_run_of_its_key_in_flight_and_reuses_it(
    setup: tuple[Jobs, ResolvedImage, ResolvedImage],
) -> None:
    """Two scenario processes that miss the same key at once train it once: the second waits for the
    first's run (its lock) and then reuses what it stored, as a cache hit."""
    jobs, image, _ = setup
    cache = jobs.runtime.cache
    base_dir = prepare(jobs.tmp_path / "second" / "opt" / "ml", HYPER, ROWS)
    env = {"RUN_COUNTER": str(jobs.counter)}
    key = cache_key(image, base_dir, env)
    in_flight = cache.claim(key)  # the first run, elsewhere, holds the key
    assert in_flight is not None and cache.claim(key) is None
    thread, started = _in_thread(
        lambda: jobs.runtime.start_training(image, base_dir, jobs.tmp_path / "second.log", env)
    )
    time.sleep(1.0)
    assert thread.is_alive() and jobs.real_runs() == 0  # waiting, not training
    model = jobs.tmp_path / "first-model"
    model.mkdir()
    (model / "weights.txt").write_text("from the first run")
    (jobs.tmp_path / "first.log").write_text("epoch=1; train_loss=0.5;\n")
    cache.store(key, model, jobs.tmp_path / "first.log", "job-first")
    cache.release(in_flight)
    thread.join(30)
    assert isinstance(started[0], ReusedTraining) and started[0].source_job == "job-first"
    assert jobs.real_runs() == 0
    assert (base_dir / "model" / "weights.txt").read_text() == "from the first run"


def test_a_job_trains_itself_when_the_run_it_waited_for_failed(
    setup: tuple[Jobs, ResolvedImage, ResolvedImage],
) -> None:
    jobs, image, _ = setup
    cache = jobs.runtime.cache
    base_dir = prepare(jobs.tmp_path / "second" / "opt" / "ml", HYPER, ROWS)
    env = {"RUN_COUNTER": str(jobs.counter)}
    in_flight = cache.claim(cache_key(image, base_dir, env))
    assert in_flight is not None
    thread, started = _in_thread(
        lambda: jobs.runtime.start_training(image, base_dir, jobs.tmp_path / "second.log", env)
    )
    time.sleep(0.5)
    cache.release(in_flight)  # the first run ended without storing anything (it failed)
    thread.join(30)
    assert not isinstance(started[0], ReusedTraining) and started[0].wait(60) == 0
    assert jobs.real_runs() == 1
    # Its own run is stored and its lock released: the next job is a plain hit.
    again, _, _ = jobs.run(image, HYPER, ROWS)
    assert isinstance(again, ReusedTraining) and jobs.real_runs() == 1
