"""Two moto 5.2.5 defects that the deployer's emulator tests work around, until harness.seams has them.

Both are bugs of the emulator, not behaviours of AWS, and both are needed for any deploy through change
sets (what `mlops deploy` does) to be usable in moto:

1. `ExecuteChangeSet` applies the resources but keeps the stack's template, parameters and outputs from
   when the change set was created (an empty template for a CREATE): `DescribeStacks` shows no
   outputs, and a later change set compares against stale parameters.
2. CloudFormation creates `AWS::StepFunctions::StateMachine` in moto's plain Step Functions backend,
   while the API (with `execute_state_machine` on) reads and runs the parser backend: the stack's
   state machine cannot be described or started.

`install()` patches both and returns an undo function. `harness.emulator.EmbeddedEmulator(install_seams=True)`
is where these belong (issue 4); the tests here start the emulator without the harness's seams.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def install() -> Callable[[], None]:
    from moto.cloudformation import models as cloudformation_models
    from moto.stepfunctions import models as stepfunctions_models
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    original_apply = cloudformation_models.ChangeSet.apply
    original_backends = stepfunctions_models.stepfunctions_backends

    def apply(self: Any) -> None:
        original_apply(self)
        stack = self.stack
        stack.template = self.template
        stack._parse_template()
        stack.parameters = self.parameters
        stack.output_map = stack._create_output_map()
        stack.description = stack.template_dict.get("Description")

    cloudformation_models.ChangeSet.apply = apply  # type: ignore[method-assign]
    # The module global is read only by StateMachine's CloudFormation hooks.
    stepfunctions_models.stepfunctions_backends = stepfunctions_parser_backends  # type: ignore[assignment]

    def undo() -> None:
        cloudformation_models.ChangeSet.apply = original_apply  # type: ignore[method-assign]
        stepfunctions_models.stepfunctions_backends = original_backends

    return undo
