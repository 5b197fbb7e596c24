"""The API-faults seam: injected errors answered at moto's request handling, for every caller.

These check the seam's mechanics (it wraps whatever `call_action` was there, counts calls down, leaves
other calls alone); what each service answers is checked against AWS's documentation in
tests/conformance/test_api_faults.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.core.responses import BaseResponse

from harness.aws_errors import aws_error
from harness.emulator import EmbeddedEmulator
from harness.faults import FaultBoard
from harness.seams import api_faults

NO_RETRIES = Config(retries={"total_max_attempts": 1})


def _client(emulator: EmbeddedEmulator, service: str, config: Config = NO_RETRIES) -> Any:
    return emulator.session().client(service, endpoint_url=emulator.endpoint_url, config=config)


@pytest.fixture
def board(emulator: EmbeddedEmulator) -> FaultBoard:
    faults = emulator.context.faults
    faults.clear()
    return faults


def test_the_seam_wraps_moto_call_action_once(emulator: EmbeddedEmulator) -> None:
    """moto 5.2.5 runs `BaseResponse.call_action` for every request of the services the seam covers; the
    installed wrapper is marked so that a second install does not wrap it twice."""
    assert getattr(BaseResponse.call_action, "_harness_api_faults", False)
    before = BaseResponse.call_action
    api_faults.install()
    assert BaseResponse.call_action is before


def test_the_wrapper_composes_with_one_installed_after_it(
    emulator: EmbeddedEmulator, board: FaultBoard
) -> None:
    """Another seam that wraps `call_action` later (an IAM check) still runs, and the fault still answers."""
    seen: list[str] = []
    inner = BaseResponse.call_action

    def outer(self: BaseResponse) -> Any:
        seen.append(self._get_action())
        return inner(self)

    BaseResponse.call_action = outer  # type: ignore[method-assign]
    try:
        board.fail_api_calls(
            "sagemaker", "ListEndpoints", aws_error("sagemaker", "ListEndpoints", "throttling")
        )
        with pytest.raises(ClientError) as raised:
            _client(emulator, "sagemaker").list_endpoints()
        assert raised.value.response["Error"]["Code"] == "ThrottlingException"
        assert _client(emulator, "sagemaker").list_endpoints()["Endpoints"] == []
    finally:
        BaseResponse.call_action = inner  # type: ignore[method-assign]
    assert seen == ["ListEndpoints", "ListEndpoints"]


def test_only_the_named_operation_fails_and_only_as_often_as_asked(
    emulator: EmbeddedEmulator, board: FaultBoard
) -> None:
    board.fail_api_calls(
        "sagemaker", "ListEndpoints", aws_error("sagemaker", "ListEndpoints", "unavailable"), times=2
    )
    sagemaker = _client(emulator, "sagemaker")
    assert sagemaker.list_models()["Models"] == []  # another operation of the same service
    for _ in range(2):
        with pytest.raises(ClientError) as raised:
            sagemaker.list_endpoints()
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert board.api_failures_left("sagemaker", "ListEndpoints") == 0


def test_a_cleared_board_fails_nothing(emulator: EmbeddedEmulator, board: FaultBoard) -> None:
    board.fail_api_calls(
        "lambda", "ListFunctions", aws_error("lambda", "ListFunctions", "throttling"), times=5
    )
    board.clear()
    assert _client(emulator, "lambda").list_functions()["Functions"] == []


@pytest.mark.parametrize(
    ("service", "operation", "kind", "problem"),
    [
        ("sagemaker", "DescribeEndpoints", "throttling", "no operation 'DescribeEndpoints'"),
        ("ses", "SendEmail", "throttling", "not 'ses'"),
        ("s3", "PutObject", "resource_limit_exceeded", "SageMaker's answer"),
        ("stepfunctions", "StartExecution", "resource_limit_exceeded", "SageMaker's answer"),
    ],
)
def test_a_call_the_boundary_cannot_fail_is_refused(
    service: str, operation: str, kind: Any, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        aws_error(service, operation, kind)
