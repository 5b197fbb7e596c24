"""A stack whose resource its service refuses: CloudFormation rolls the stack back, the request succeeds.

Sources:
- AWS CloudFormation User Guide, "Stack status codes": CREATE_FAILED (resource) then ROLLBACK_IN_PROGRESS
  and ROLLBACK_COMPLETE for a failed create ("successful removal of one or more stacks after a failed
  stack creation"); UPDATE_ROLLBACK_IN_PROGRESS, UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS and
  UPDATE_ROLLBACK_COMPLETE ("successful return of one or more stacks to a previous working state after a
  failed stack update") for a failed update.
- AWS CloudFormation API Reference, CreateStack / ExecuteChangeSet: the stack's resources are created
  after the call returns (the call answers the StackId, or nothing), so a resource's failure is seen in
  DescribeStacks and DescribeStackEvents, not as the call's error; DescribeChangeSet's ExecutionStatus
  EXECUTE_FAILED.
- CloudFormation CLI User Guide, "Resource type handler error codes": a failed handler reports one code
  (InvalidRequest: "Invalid input from the user has generated a generic exception"); the resource event's
  reason is the handler's message, as `Resource handler returned message: "..." (RequestToken: ...,
  HandlerErrorCode: ...)` in the console and the API.
- AWS CodePipeline API Reference, CreatePipeline / UpdatePipeline: InvalidStructureException for a
  pipeline with fewer than two stages (moto's message: "Pipeline has only 1 stage(s). There should be a
  minimum of 2 stages in a pipeline").
- Template errors (a `Fn::GetAtt` of an undefined resource) are answered at once, as a ValidationError of
  the call ("Template format error").
Not `aws_verified`: these create a CodePipeline pipeline and a CodeBuild project, and have not been run
against an account.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.harness.planes import Harness
from tests.harness.test_seams_cfn_pipeline import _template

REASON = 'Resource handler returned message: "Pipeline has only 1 stage(s).'


def _one_stage(template: dict[str, Any]) -> dict[str, Any]:
    properties = template["Resources"]["Pipeline"]["Properties"]
    properties["Stages"] = properties["Stages"][:1]
    return template


def _events(cloudformation: Any, stack: str) -> list[tuple[str, str, str]]:
    """(logical id, status, reason) oldest first."""
    events = cloudformation.describe_stack_events(StackName=stack)["StackEvents"]
    return [
        (e["LogicalResourceId"], e["ResourceStatus"], e.get("ResourceStatusReason") or "")
        for e in reversed(events)
    ]


def _submit(cloudformation: Any, stack: str, how: str, kind: str, template: dict[str, Any]) -> None:
    """The template to `stack` as `how` says: CreateStack or UpdateStack itself, or a change set of
    `kind` (CREATE or UPDATE) created and executed, whose ExecutionStatus is then EXECUTE_FAILED."""
    body = json.dumps(template)
    if how == "create_stack":
        cloudformation.create_stack(StackName=stack, TemplateBody=body, Capabilities=["CAPABILITY_IAM"])
        return
    if how == "update_stack":
        cloudformation.update_stack(StackName=stack, TemplateBody=body, Capabilities=["CAPABILITY_IAM"])
        return
    created = cloudformation.create_change_set(
        StackName=stack,
        ChangeSetName=kind.lower(),
        ChangeSetType=kind,
        TemplateBody=body,
        Capabilities=["CAPABILITY_IAM"],
    )
    cloudformation.execute_change_set(ChangeSetName=created["Id"], StackName=stack)
    described = cloudformation.describe_change_set(ChangeSetName=created["Id"], StackName=stack)
    assert described["ExecutionStatus"] == "EXECUTE_FAILED"


@pytest.mark.parametrize("how", ["create_stack", "change_set"])
def test_a_resource_its_service_refuses_rolls_the_created_stack_back(
    conformance_harness: Harness, how: str
) -> None:
    """CreateStack (or a CREATE change set) with a one-stage pipeline: the call succeeds; the pipeline is
    CREATE_FAILED with CodePipeline's message as a handler's reason, the stack ROLLBACK_COMPLETE with no
    outputs, and the build project made before it is deleted."""
    cloudformation = conformance_harness.client("cloudformation")
    stack = f"refused-{how.replace('_', '-')}"
    project = f"{stack}-build"
    template = _one_stage(_template(f"{stack}-pipeline", project))
    _submit(cloudformation, stack, how, "CREATE", template)

    (described,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    assert described["StackStatus"] == "ROLLBACK_COMPLETE"
    assert not described.get("Outputs")
    events = _events(cloudformation, stack)
    failed = [event for event in events if event[1] == "CREATE_FAILED"]
    assert [event[0] for event in failed] == ["Pipeline"]
    assert failed[0][2].startswith(REASON) and failed[0][2].endswith("HandlerErrorCode: InvalidRequest)")
    statuses = [status for logical, status, _ in events if logical == stack]
    assert statuses[-2:] == ["ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE"]
    rollback = next(reason for logical, status, reason in events if status == "ROLLBACK_IN_PROGRESS")
    assert rollback == "The following resource(s) failed to create: [Pipeline]. Rollback requested by user."
    # What the rollback deleted stays deleted: the stack lists nothing, and nothing is made again.
    assert cloudformation.describe_stack_resources(StackName=stack)["StackResources"] == []
    assert project not in conformance_harness.client("codebuild").list_projects()["projects"]
    pipelines = conformance_harness.client("codepipeline").list_pipelines()["pipelines"]
    assert f"{stack}-pipeline" not in [p["name"] for p in pipelines]
    cloudformation.delete_stack(StackName=stack)


@pytest.mark.parametrize("how", ["update_stack", "change_set"])
def test_a_refused_update_rolls_back_to_the_previous_template(conformance_harness: Harness, how: str) -> None:
    """An update that changes the project's image and cuts the pipeline to one stage: the project is
    updated, the pipeline fails (UPDATE_FAILED: UpdatePipeline checks the structure as CreatePipeline
    does), and the stack returns to its previous template: UPDATE_ROLLBACK_COMPLETE, the project's image
    and the pipeline's two stages as before, the previous outputs."""
    cloudformation = conformance_harness.client("cloudformation")
    codebuild = conformance_harness.client("codebuild")
    stack = f"update-{how.replace('_', '-')}"
    pipeline, project = f"{stack}-pipeline", f"{stack}-build"
    cloudformation.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(_template(pipeline, project)),
        Capabilities=["CAPABILITY_IAM"],
    )
    (before,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    assert before["StackStatus"] == "CREATE_COMPLETE"

    broken = _one_stage(_template(pipeline, project, image="img:2"))
    _submit(cloudformation, stack, how, "UPDATE", broken)

    (after,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    assert after["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"

    # The previous outputs (the pipeline's version aside: the rollback's own UpdatePipeline may count,
    # and AWS documents nothing on it).
    def outputs(described: dict[str, Any]) -> dict[str, str]:
        found = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
        found.pop("PipelineVersion")
        return found

    assert outputs(after) == outputs(before) and len(outputs(after)) == 3
    events = _events(cloudformation, stack)
    failed = [event for event in events if event[1] == "UPDATE_FAILED"]
    assert [event[0] for event in failed] == ["Pipeline"] and failed[0][2].startswith(REASON)
    statuses = [status for logical, status, _ in events if logical == stack]
    assert statuses[-3:] == [
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
        "UPDATE_ROLLBACK_COMPLETE",
    ]
    (built,) = codebuild.batch_get_projects(names=[project])["projects"]
    assert built["environment"]["image"] == "img:1"
    stages = conformance_harness.client("codepipeline").get_pipeline(name=pipeline)["pipeline"]["stages"]
    assert [stage["name"] for stage in stages] == ["Source", "Build"]
    template = cloudformation.get_template(StackName=stack)["TemplateBody"]
    assert "img:2" not in (template if isinstance(template, str) else json.dumps(template))
    cloudformation.delete_stack(StackName=stack)


def test_an_update_that_adds_a_refused_resource_rolls_back_and_keeps_the_rest(
    conformance_harness: Harness,
) -> None:
    """An update that adds a second, one-stage pipeline: the new resource is CREATE_FAILED, the stack
    UPDATE_ROLLBACK_COMPLETE, and the first pipeline and the project are untouched."""
    cloudformation = conformance_harness.client("cloudformation")
    stack = "update-adds-refused"
    cloudformation.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(_template(f"{stack}-pipeline", f"{stack}-build")),
        Capabilities=["CAPABILITY_IAM"],
    )
    template = _template(f"{stack}-pipeline", f"{stack}-build")
    second = json.loads(json.dumps(template["Resources"]["Pipeline"]))
    second["Properties"]["Name"] = f"{stack}-second"
    second["Properties"]["Stages"] = second["Properties"]["Stages"][:1]
    template["Resources"]["Second"] = second
    _submit(cloudformation, stack, "update_stack", "UPDATE", template)

    (after,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    assert after["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    failed = [event for event in _events(cloudformation, stack) if event[1].endswith("_FAILED")]
    assert [(event[0], event[1]) for event in failed] == [("Second", "CREATE_FAILED")]
    names = [p["name"] for p in conformance_harness.client("codepipeline").list_pipelines()["pipelines"]]
    assert f"{stack}-pipeline" in names and f"{stack}-second" not in names
    resources = cloudformation.describe_stack_resources(StackName=stack)["StackResources"]
    assert "Second" not in {resource["LogicalResourceId"] for resource in resources}
    cloudformation.delete_stack(StackName=stack)


def test_a_template_error_is_the_calls_own_error(conformance_harness: Harness) -> None:
    """A `Fn::GetAtt` of a resource the template does not define is a template error: CreateStack itself
    answers ValidationError, and no stack is rolled back."""
    template = _template("template-error-pipeline", "template-error-build")
    template["Resources"]["Project"]["Properties"]["Environment"]["Image"] = {
        "Fn::GetAtt": ["NoSuchResource", "Arn"]
    }
    cloudformation = conformance_harness.client("cloudformation")
    with pytest.raises(ClientError) as raised:
        cloudformation.create_stack(
            StackName="template-error", TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM"]
        )
    assert raised.value.response["Error"]["Code"] == "ValidationError"
