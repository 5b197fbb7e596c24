"""`train`: read the channels, fit GPT-Neo on `Query: <q> Intent:` -> ` <intent><eos>`, evaluate by
greedy generation, and write the model directory (weights, tokenizer, labels, metrics, manifest, ONNX).

This module is the job's frame (contract, validation, failure handling, SIGTERM); the torch work is in
`byoc.fitting`, imported only after hyperparameters and data are valid, so user errors fail fast.

- The loss counts only the completion (prompt and padding are masked with -100).
- Seeded: the same data, hyperparameters, seed and thread count give the same weights.
- CPU or GPU; on a GPU with bf16 support the forward pass runs under bf16 autocast.
- Progress goes to the log (stderr); metrics print to stdout as `name=value;` for SageMaker's
  MetricDefinitions: `epoch=N; train_loss=X;` per epoch and `accuracy=..; macro_f1=..; ...` at the end.
- SIGTERM stops training at the next step boundary: nothing is written to the model directory (outputs
  are staged and moved in only when complete), the failure file says where it stopped, exit code 143.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from collections.abc import Mapping
from types import FrameType
from typing import Any

from byoc import environment
from byoc.data import Dataset, load_dataset
from byoc.errors import EXIT_OK, TrainingStopped, UserError, exit_code, failure_reason, write_failure
from byoc.hyperparameters import parse_hyperparameters
from byoc.stopping import StopFlag

__all__ = ["StopFlag", "main", "run"]

log = logging.getLogger("byoc.train")


def run(contract: environment.Paths, stop: StopFlag) -> dict[str, Any]:
    """The whole training job; returns the metrics. Raises UserError for what the user must fix."""
    hp = parse_hyperparameters(environment.read_hyperparameters(contract))
    configured = sorted(environment.read_inputdataconfig(contract))
    log.info("channels configured=%s", ",".join(configured) or "(no inputdataconfig.json)")
    log.info("hyperparameters %s", json.dumps(hp.to_json(), sort_keys=True))
    dataset: Dataset = load_dataset(
        contract.channel(environment.TRAINING_CHANNEL),
        contract.channel(environment.VALIDATION_CHANNEL),
        hp.eval_fraction,
        hp.seed,
    )
    log.info(
        "data train=%d eval=%d (%s) intents=%d fingerprint=%s",
        len(dataset.train),
        len(dataset.eval),
        dataset.eval_source,
        len(dataset.labels),
        dataset.fingerprint[:12],
    )
    # Imported only now: bad hyperparameters or data fail in a second, before torch is loaded.
    from byoc.fitting import train_model

    return train_model(contract, hp, dataset, stop)


def _configure_logging() -> None:
    """Our progress at INFO on stderr; the libraries only when something is wrong."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    byoc_log = logging.getLogger("byoc")
    if not byoc_log.handlers:
        byoc_log.addHandler(handler)
    byoc_log.setLevel(logging.INFO)
    byoc_log.propagate = False
    for noisy in ("torch", "transformers", "onnxscript", "onnx_ir"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def main(environ: Mapping[str, str] | None = None, install_signal_handler: bool = True) -> int:
    """The `train` entry point: 0 on success; otherwise the failure file and a deliberate exit code."""
    _configure_logging()
    contract = environment.paths(environ)
    stop = StopFlag()
    if install_signal_handler:

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            log.warning("SIGTERM received: stopping at the next step boundary")
            stop.set()

        signal.signal(signal.SIGTERM, on_sigterm)
    if contract.failure_file.exists():
        # SageMaker starts each job on a fresh /opt/ml; a reused local tree must not show an old reason.
        log.warning("removing the failure file of an earlier run: %s", contract.failure_file)
        contract.failure_file.unlink()
    started = time.monotonic()
    try:
        metrics = run(contract, stop)
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):
            error = TrainingStopped("interrupted (SIGINT)")
        reason = failure_reason(error)
        write_failure(contract.failure_file, reason)
        if isinstance(error, UserError | TrainingStopped):
            log.error("%s", reason)
        else:
            log.exception("training failed: %s", reason)
        return exit_code(error)
    log.info(
        "training job done seconds=%.1f accuracy=%.4f model_dir=%s",
        time.monotonic() - started,
        metrics["accuracy"],
        contract.model_dir,
    )
    return EXIT_OK
