"""Step caching for training jobs, modelled on SageMaker Pipelines' step caching.

SageMaker Pipelines can reuse a step's earlier successful run when the step's arguments match
("Caching pipeline steps", SageMaker developer guide: a cache hit reuses the previous run's outputs
instead of running the step again). The harness offers the same for its training jobs, where it pays
most: a CreateTrainingJob whose **image digest**, **input data** (every byte of every downloaded
channel file, after any fault rewrote them), **hyperparameters**, **channel configuration** and
**environment** all equal those of an earlier *successful* job reuses that job's `/opt/ml/model` and its
log instead of running `train` again. Seeded training (the `seed` hyperparameter, one torch thread on
CPU) makes the reuse sound: the container would have written the same model.

What stays real: the job is still created, named, described and listed through the emulator with
SageMaker's statuses and transitions; its FinalMetricDataList comes from the (replayed) log; its model
is packed and uploaded to the job's own S3 output path; the state machine, the quality gate, the
endpoint and the API all run as without the cache. What differs, and is shown: the job's log starts
with `CACHE_HIT_MARKER` naming the job whose model it reused, which the run report and the scenario
summary show as a cache hit. On AWS the job would train (this is a local speed-up only; AWS's
CreateTrainingJob has no cache).

`CachingRuntime` wraps a container runtime for the training runner only: `start_training` looks the
key up before it starts the container, and stores the model after a run that exits 0. A call that
names another `program` (an injected fault replacing `train`, harness/faults.py, which wraps this
runtime from outside) always runs it. Entries are folders under the cache root, written to a
temporary folder and renamed into place, so that parallel scenario processes can share one root.

A run in flight is claimed too: the first job to miss a key holds an exclusive `flock` on
`<root>/.<key>.lock` until its container exits, and a job with the same key that starts meanwhile
(another scenario process, or another thread) waits for that lock instead of training the same model
a second time at once; it then finds the entry (a hit), or trains itself when the first run failed.
While it waits its status is Training, as the run it waits for; a StopTrainingJob takes effect when the
wait ends, and the wait gives up after `claim_wait_s` (then it trains).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.compute.container_runtime import (
    ContainerProcess,
    ContainerRuntime,
    PythonProgram,
    ResolvedImage,
    RuntimeWrapper,
)

LOG = logging.getLogger(__name__)

CACHE_HIT_MARKER = "harness: training cache hit:"
CACHE_DIR_ENV = "MLOPS_CACHE_DIR"
# The parts of the key (a change to any one of them means the job trains).
KEY_PARTS = ("image_digest", "data", "hyperparameters", "input_data_config", "environment")


def cache_home() -> Path:
    """Where the harness keeps what outlives a stack on this machine (the training cache, CodeBuild's
    local cache): `$MLOPS_CACHE_DIR`, else `~/.cache/byoc-mlops`."""
    base = os.environ.get(CACHE_DIR_ENV)
    return Path(base) if base else Path.home() / ".cache" / "byoc-mlops"


def default_cache_root() -> Path:
    """The training cache's folder: `<cache home>/training-jobs`."""
    return cache_home() / "training-jobs"


def data_fingerprint(data_dir: Path) -> str:
    """sha256 over every file under `data_dir` (the channels): relative path and content, sorted."""
    hasher = hashlib.sha256()
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        hasher.update(path.relative_to(data_dir).as_posix().encode("utf-8") + b"\0")
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(chunk)
        hasher.update(b"\0")
    return hasher.hexdigest()


def cache_key(image: ResolvedImage, base_dir: Path, environment: dict[str, str]) -> str:
    """The key of a training run prepared under `base_dir` (the job's /opt/ml)."""
    config = base_dir / "input" / "config"
    parts = {
        "image_digest": image.digest,
        "data": data_fingerprint(base_dir / "input" / "data"),
        "hyperparameters": json.loads((config / "hyperparameters.json").read_text(encoding="utf-8")),
        "input_data_config": json.loads((config / "inputdataconfig.json").read_text(encoding="utf-8")),
        "environment": environment,
    }
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    key: str
    folder: Path

    @property
    def source_job(self) -> str:
        meta = json.loads((self.folder / "meta.json").read_text(encoding="utf-8"))
        return str(meta.get("job", "unknown"))


class TrainingCache:
    """Finished training runs by key, as folders `<root>/<key>/{model/,train.log,meta.json}`."""

    def __init__(self, root: Path, claim_wait_s: float = 900.0, claim_poll_s: float = 0.2) -> None:
        self.root = root
        self.claim_wait_s = claim_wait_s
        self.claim_poll_s = claim_poll_s

    def claim(self, key: str) -> int | None:
        """Holds the key's run-in-flight lock: a file descriptor to `release`, or None while another
        holder (process or thread) has it."""
        self.root.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.root / f".{key}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return None
        return descriptor

    @staticmethod
    def release(descriptor: int) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            os.close(descriptor)

    def claim_after_waiting(self, key: str) -> tuple[CacheEntry | None, int | None]:
        """Waits while another run of `key` is in flight: (its entry, None) once it stored one, else
        (None, the lock) for this caller to train; (None, None) when the wait gave up."""
        deadline = time.monotonic() + self.claim_wait_s
        while True:
            entry = self.lookup(key)
            if entry is not None:
                return entry, None
            descriptor = self.claim(key)
            if descriptor is not None:
                entry = self.lookup(key)  # stored between the lookup and the claim
                if entry is not None:
                    self.release(descriptor)
                    return entry, None
                return None, descriptor
            if time.monotonic() >= deadline:
                return None, None
            time.sleep(self.claim_poll_s)

    def lookup(self, key: str) -> CacheEntry | None:
        folder = self.root / key
        if (folder / "meta.json").is_file() and (folder / "model").is_dir():
            return CacheEntry(key, folder)
        return None

    def store(self, key: str, model_dir: Path, log_path: Path, job: str) -> None:
        """Keeps a successful run's model and log; a concurrent store of the same key wins, harmlessly."""
        if self.lookup(key) is not None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=self.root))
        try:
            shutil.copytree(model_dir, staging / "model")
            shutil.copyfile(log_path, staging / "train.log")
            meta = {"job": job, "stored_at": time.time(), "key": key}
            (staging / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
            os.rename(staging, self.root / key)
        except OSError as error:  # another process stored it first, or the disk is full: not our job
            LOG.debug("training cache: not stored (%s)", error)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def restore(self, entry: CacheEntry, model_dir: Path, log_path: Path) -> None:
        """Puts the entry's model under `model_dir` and its log, after the marker line, in `log_path`."""
        shutil.rmtree(model_dir, ignore_errors=True)
        shutil.copytree(entry.folder / "model", model_dir)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            note = f"{CACHE_HIT_MARKER} reused the model of training job {entry.source_job} (key {entry.key})"
            log.write(f"{note}\n".encode())
            log.write((entry.folder / "train.log").read_bytes())


class ReusedTraining(ContainerProcess):
    """A training 'container' that already finished: the cache restored its outputs (exit status 0)."""

    def __init__(self, log_path: Path, source_job: str) -> None:  # no child process to hold
        self.log_path = log_path
        self.source_job = source_job

    @property
    def pid(self) -> int:
        return -1

    def poll(self) -> int | None:
        return 0

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def terminate(self) -> None:
        pass

    def stop(self, grace_seconds: float = 10.0) -> int:
        return 0

    def add_exit_hook(self, hook: Callable[[int], None]) -> None:
        hook(0)


class CachingRuntime(RuntimeWrapper):
    """`inner` with step caching for `start_training` (everything else is passed through unchanged)."""

    def __init__(self, inner: ContainerRuntime, cache: TrainingCache) -> None:
        super().__init__(inner)
        self.cache = cache

    def start_training(
        self,
        image: ResolvedImage,
        base_dir: Path,
        log_path: Path,
        environment: dict[str, str],
        program: PythonProgram | None = None,
    ) -> ContainerProcess:
        if program is not None:  # another program runs in the image's place (an injected fault): run it
            return self.inner.start_training(image, base_dir, log_path, environment, program)
        key = cache_key(image, base_dir, environment)
        entry, claimed = self.cache.claim_after_waiting(key)
        if entry is not None:
            LOG.info("training cache hit %s (from job %s)", key[:12], entry.source_job)
            self.cache.restore(entry, base_dir / "model", log_path)
            return ReusedTraining(log_path, entry.source_job)
        try:
            process = self.inner.start_training(image, base_dir, log_path, environment)
        except BaseException:
            if claimed is not None:
                self.cache.release(claimed)
            raise
        job = base_dir.parent.parent.name  # <work>/training-jobs/<account>/<region>/<job>/opt/ml

        def finished(code: int) -> None:
            try:
                if code == 0:
                    self.cache.store(key, base_dir / "model", log_path, job)
            finally:
                if claimed is not None:
                    self.cache.release(claimed)

        process.add_exit_hook(finished)
        return process


def reused_from(log_text: str) -> str | None:
    """The job whose model a training job reused, read from its log's first line (None: it trained)."""
    first = log_text.split("\n", 1)[0]
    if not first.startswith(CACHE_HIT_MARKER):
        return None
    words = first[len(CACHE_HIT_MARKER) :].split()
    return words[words.index("job") + 1] if "job" in words else "unknown"
