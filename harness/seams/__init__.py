"""Every change the harness makes to moto's behaviour, registered in one table.

moto 5.2.5 stores what AWS would run but runs little of it (see README "Harness" and
docs/MOTO-SEAMS.md). Each seam lives in a module of this package, named after the service it
changes, documents why it exists, and is covered by tests in tests/harness/test_seams_<module>.py
(test_seams_lambda.py for `awslambda`) that fail loudly when moto's internals move. `install()`
applies them all, once, before the server starts.

The seams reach private moto APIs: moto is pinned to exactly one version (pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Callable

import moto

from harness.seams import (
    api_faults,
    apigateway,
    awslambda,
    cfn_pipeline,
    cloudformation,
    codepipeline,
    ecr,
    events,
    iam,
    sagemaker,
    server,
    stepfunctions,
    templates,
)

PINNED_MOTO_VERSION = "5.2.5"

# name -> installer. Explicit registration: each seam module adds its line here.
SEAMS: dict[str, Callable[[], None]] = {
    "awslambda": awslambda.install,
    "apigateway": apigateway.install,
    "events": events.install,
    "codepipeline": codepipeline.install,
    "ecr": ecr.install,
    "cloudformation": cloudformation.install,
    "cfn_pipeline": cfn_pipeline.install,
    "sagemaker": sagemaker.install,
    "stepfunctions": stepfunctions.install,
    "iam": iam.install,
    # Not one service's: injected API errors at every service's request handling (harness/faults.py).
    "api_faults": api_faults.install,
    "server": server.install,
    "templates": templates.install,
}

_installed = False


def install() -> None:
    """Applies every registered seam (idempotent)."""
    global _installed
    if moto.__version__ != PINNED_MOTO_VERSION:
        raise RuntimeError(
            f"the harness's seams were written for moto {PINNED_MOTO_VERSION}, but moto "
            f"{moto.__version__} is installed: pin it back or port harness/seams"
        )
    if _installed:
        return
    for installer in SEAMS.values():
        installer()
    _installed = True
