"""The EventBridge rules Step Functions manages for `.sync` integrations, and who may create them.

For a `.sync` Task, Step Functions watches the job through a managed EventBridge rule in the account
(`StepFunctionsGetEventsFor<Service><Kind>Rule`), which it creates with the state machine's role. AWS's
generated policies for the SageMaker integrations therefore list `events:PutTargets`, `events:PutRule`
and `events:DescribeRule` on that rule (Step Functions developer guide, "IAM policies for Amazon
SageMaker AI"), and CreateStateMachine / UpdateStateMachine refuse a role that lacks them:
`AccessDeniedException: 'ROLE_ARN' is not authorized to create managed-rule.` (reported in
aws-samples/amazon-sagemaker-safe-deployment-pipeline#29, serverless-step-functions#385 and
nasa/cumulus#2693, the last naming exactly these three actions).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Final

from deployer.iam_policy import Policy, Request, evaluate

# `.sync` resource (without the suffix) -> its managed rule's name.
MANAGED_RULES: Final = {
    "arn:aws:states:::sagemaker:createTrainingJob": "StepFunctionsGetEventsForSageMakerTrainingJobsRule",
    "arn:aws:states:::sagemaker:createTransformJob": "StepFunctionsGetEventsForSageMakerTransformJobsRule",
    "arn:aws:states:::sagemaker:createProcessingJob": "StepFunctionsGetEventsForSageMakerProcessingJobsRule",
    "arn:aws:states:::sagemaker:createHyperParameterTuningJob": (
        "StepFunctionsGetEventsForSageMakerTuningJobsRule"
    ),
    "arn:aws:states:::codebuild:startBuild": "StepFunctionsGetEventsForCodeBuildStartBuildRule",
    "arn:aws:states:::states:startExecution": "StepFunctionsGetEventsForStepFunctionsExecutionRule",
}
RULE_ACTIONS: Final = ("events:PutTargets", "events:PutRule", "events:DescribeRule")


def _states(definition: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for state in (definition.get("States") or {}).values():
        if not isinstance(state, Mapping):
            continue
        yield state
        for branch in state.get("Branches") or []:
            if isinstance(branch, Mapping):
                yield from _states(branch)
        for key in ("Iterator", "ItemProcessor"):
            if isinstance(state.get(key), Mapping):
                yield from _states(state[key])


def managed_rules(definition_text: str) -> list[str]:
    """The managed rules a state machine's `.sync` Tasks need (none for a definition that is not JSON)."""
    try:
        definition = json.loads(definition_text)
    except ValueError:
        return []
    if not isinstance(definition, Mapping):
        return []
    names = set()
    for state in _states(definition):
        resource = str(state.get("Resource", ""))
        if resource.endswith(".sync") or resource.endswith(".sync:2"):
            rule = MANAGED_RULES.get(resource.rsplit(".sync", 1)[0])
            if rule is not None:
                names.add(rule)
    return sorted(names)


def may_create_managed_rules(
    policies: tuple[Policy, ...], rules: list[str], region: str, account: str
) -> bool:
    """Whether these policies allow every action Step Functions needs on each managed rule."""
    for rule in rules:
        arn = f"arn:aws:events:{region}:{account}:rule/{rule}"
        for action in RULE_ACTIONS:
            if not evaluate(policies, Request(action, arn)).allowed:
                return False
    return True


def refusal_message(role_arn: str) -> str:
    return f"'{role_arn}' is not authorized to create managed-rule."
