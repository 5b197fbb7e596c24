"""The main job's report folder, assembled from a pipeline result and what the stack recorded."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.compute.training_cache import reused_from
from harness.flow_model import FlowSummary
from harness.local import LocalAws
from harness.pipeline import PipelineResult
from harness.report import RunReport, write_report

LOG = logging.getLogger(__name__)


def write_run_report(stack: LocalAws, result: PipelineResult, summary: FlowSummary, folder: Path) -> Path:
    """The run's report folder (timeline, state machine path, loss curve, registry item, answers)."""
    sfn = stack.client("stepfunctions")
    state_machine = None
    history: list[Mapping[str, Any]] = []
    training_log = ""
    if summary.execution_arn:
        described = sfn.describe_execution(executionArn=summary.execution_arn)
        machine = sfn.describe_state_machine(stateMachineArn=described["stateMachineArn"])
        state_machine = json.loads(machine["definition"])
        history = _execution_history(sfn, summary.execution_arn)
        job_name = f"{summary.execution_arn.rsplit(':', 1)[1]}-train"
        try:
            training_log = stack.training_log(job_name)
        except Exception as error:  # the report is written even when the job left no log
            LOG.warning("no training log for %s: %s", job_name, error)
    reused = reused_from(training_log) if training_log else None
    summary.training_cache_hit = reused is not None
    details = {
        key: value
        for key, value in {
            "runtime": summary.runtime,
            "commit": summary.commit_id or "",
            "image digest": summary.image_digest or "",
            "data version": summary.data_version or "",
            "endpoint": summary.endpoint_name or "",
            "model version": summary.model_version or "",
            "api url": summary.api_url or "",
            "training cache": f"hit: reused the model of training job {reused}" if reused else "",
        }.items()
        if value
    }
    return write_report(
        folder,
        RunReport(
            pipeline=result.to_json(),
            state_machine=state_machine,
            execution_arn=summary.execution_arn,
            execution_history=history,
            training_log=training_log,
            registry_item=summary.registry_item,
            sample_answers=[asdict(answer) for answer in summary.sample_answers],
            details=details,
            access_denied=summary.access_denied,
        ),
    )


def _execution_history(sfn: Any, execution_arn: str) -> list[Mapping[str, Any]]:
    events: list[Mapping[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events.extend(page["events"])
    return events
