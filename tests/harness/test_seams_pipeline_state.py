"""The GetPipelineState seam: the runner's view of its runs, served through the CodePipeline API."""

from __future__ import annotations

import inspect

import pytest
from botocore.exceptions import ClientError

import harness.seams as harness_seams
from harness.emulator import ACCOUNT_ID, REGION, EmbeddedEmulator
from harness.seams import codepipeline

APPROVED_AT = 1_764_300_000.5


def test_get_pipeline_state_answers_what_the_runner_published(emulator: EmbeddedEmulator) -> None:
    emulator.context.pipeline_states(ACCOUNT_ID, REGION).publish(
        ACCOUNT_ID,
        REGION,
        {
            "pipelineName": "seam-pipeline",
            "pipelineVersion": 1,
            "created": APPROVED_AT - 60,
            "updated": APPROVED_AT,
            "stageStates": [
                {
                    "stageName": "Approve",
                    "inboundTransitionState": {"enabled": True},
                    "latestExecution": {"pipelineExecutionId": "e-1", "status": "Succeeded"},
                    "actionStates": [
                        {
                            "actionName": "ManualApproval",
                            "latestExecution": {
                                "status": "Succeeded",
                                "summary": "looks good",
                                "lastUpdatedBy": "alice",
                                "lastStatusChange": APPROVED_AT,
                            },
                        }
                    ],
                }
            ],
        },
    )
    state = emulator.client("codepipeline").get_pipeline_state(name="seam-pipeline")
    assert state["pipelineName"] == "seam-pipeline"
    [stage] = state["stageStates"]
    latest = stage["actionStates"][0]["latestExecution"]
    assert (latest["status"], latest["lastUpdatedBy"]) == ("Succeeded", "alice")
    assert latest["summary"] == "looks good"
    assert latest["lastStatusChange"].timestamp() == pytest.approx(APPROVED_AT)


def test_the_states_go_with_moto_s_reset(emulator: EmbeddedEmulator) -> None:
    """The states live on moto's CodePipeline backend: the reset that clears moto's state (as
    stopping an emulator does) clears them too."""
    from moto.moto_api._internal.models import moto_api_backend

    states = emulator.context.pipeline_states(ACCOUNT_ID, REGION)
    states.publish(ACCOUNT_ID, REGION, {"pipelineName": "gone", "created": 1.0, "stageStates": []})
    assert emulator.context.pipeline_states(ACCOUNT_ID, REGION).get(ACCOUNT_ID, REGION, "gone") is not None
    moto_api_backend.reset()
    assert emulator.context.pipeline_states(ACCOUNT_ID, REGION).get(ACCOUNT_ID, REGION, "gone") is None


def test_unknown_pipeline_is_not_found(emulator: EmbeddedEmulator) -> None:
    with pytest.raises(ClientError) as raised:
        emulator.client("codepipeline").get_pipeline_state(name="never-ran")
    assert raised.value.response["Error"]["Code"] == "PipelineNotFoundException"


def test_seam_is_installed_and_moto_still_lacks_get_pipeline_state() -> None:
    """Fails loudly when moto implements GetPipelineState itself (then drop it from the seam)."""
    harness_seams.install()
    from moto.codepipeline import models, responses

    assert getattr(responses.CodePipelineResponse, "get_pipeline_state") is codepipeline.get_pipeline_state  # noqa: B009
    assert "def get_pipeline_state" not in inspect.getsource(responses)
    assert "def get_pipeline_state" not in inspect.getsource(models)
