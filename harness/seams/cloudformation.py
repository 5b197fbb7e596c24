"""Seams: CloudFormation's change sets show what they executed, and a stack role's missing permissions
fail the stack as on AWS.

1. Change sets. `mlops deploy` creates and updates stacks through change sets, as on AWS. moto 5.2.5's
   `ExecuteChangeSet` creates or updates the resources (`ChangeSet.apply`) but leaves the stack's parsed
   template, parameters and outputs as they were when the change set was *created* (for a CREATE: an
   empty template). DescribeStacks then shows no outputs, and the next change set is compared with stale
   parameters. AWS shows the executed template's. How: `ChangeSet.apply` is wrapped: after moto has
   applied the resources, the stack takes the change set's template and parameters, re-parses the
   template and rebuilds its outputs.

2. The stack role. A stack created or updated with `RoleARN` (the API stack, which publish-api creates
   with `ApiStackRole`) is deployed with that role's rights on AWS; moto creates every resource whatever
   the role allows, and never fails or rolls back a stack. How: `Stack.create_resources` and
   `Stack.update` are wrapped: before moto touches a resource, `harness.stack_role.first_denial` checks
   each resource's handler permissions (create for a new resource, update for a changed one, delete for a
   removed one) against the role's policies in moto's IAM. When one is missing, nothing is created or
   changed and the stack's events and status are CloudFormation's for a failed resource (CloudFormation
   user guide, "Stack status codes" and "Troubleshooting: Update rollback"): on create,
   CREATE_IN_PROGRESS, the resource's CREATE_FAILED with the handler's message, ROLLBACK_IN_PROGRESS
   ("The following resource(s) failed to create: [X]. Rollback requested by user."), ROLLBACK_COMPLETE
   (the stack then shows no outputs); on update, UPDATE_FAILED (or CREATE_FAILED for a new resource),
   UPDATE_ROLLBACK_IN_PROGRESS, UPDATE_ROLLBACK_COMPLETE, with the previous template, parameters and
   outputs kept. Resources created before the failing one and deleted by the rollback are not shown.
   A stack without a role is deployed with the caller's rights (the harness's admin): not checked;
   nor is one while the context's IAM enforcement is off. A role the emulator's IAM does not hold has no
   policies: every resource fails (AWS refuses such a RoleARN at once: "Role ... is invalid or cannot be
   assumed"). Each denial is recorded with the context's (`context.iam.record`) for the run report.

3. A resource that its service refuses. moto creates a stack's resources inside the CreateStack,
   UpdateStack or ExecuteChangeSet request, and an error of the resource's backend (CodePipeline's
   InvalidStructureException for a one-stage pipeline, CodeBuild's "Project already exists") escapes
   the request: the caller gets a 500 or another service's JSON error, the resources made before stay,
   and the stack's lazy resource map tries them again on the next DescribeStackResources. On AWS the
   request succeeds, the resource's handler fails and the stack rolls back, with the same events and
   statuses as in 2 and the handler's message as the reason (`Resource handler returned message:
   "..." (RequestToken: ..., HandlerErrorCode: ...)`, the codes of the CloudFormation CLI guide,
   "Resource type handler error codes"). How: moto's `parse_and_create_resource` and
   `parse_and_update_resource` are wrapped so that a backend's error names its resource
   (`ResourceFailed`); moto's own template errors (ValidationError and the like, which AWS answers at
   once) pass unchanged. A failed create deletes what it made; a failed update applies the previous
   template and parameters again (UPDATE_ROLLBACK_FAILED if that fails too); a failed change set is
   EXECUTE_FAILED. Not modelled: a resource deleted by the failed update before the failing one is not
   made again.

4. `Fn::Sub` with variables (`[text, {Name: value}]`). moto 5.2.5's `parsing.clean_json` substitutes
   the variables with `string.Template(text).safe_substitute`, which also reads `$$` as an escaped `$`:
   the state machine's `$$.Execution.Name` (Step Functions' context object) reached the definition as
   `$.Execution.Name`, and every execution failed with States.Runtime. CloudFormation gives `$$` no
   meaning (its one escape is `${!Literal}`, CloudFormation user guide, "Fn::Sub"). How: a
   `clean_json` wrapper replaces each `${Name}` of the variables with its resolved value first, then
   passes the text on as the one-string form, which moto resolves as AWS does.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from moto.cloudformation import models as cloudformation_models
from moto.cloudformation import parsing
from moto.cloudformation.exceptions import CloudFormationError, UnformattedGetAttTemplateException
from moto.cloudformation.parsing import OutputMap

from harness.context import current
from harness.iam.principals import role_policies
from harness.stack_role import Denial, first_denial

logger = logging.getLogger(__name__)

_moto_apply = cloudformation_models.ChangeSet.apply
_moto_create_resources = cloudformation_models.Stack.create_resources
_moto_update = cloudformation_models.Stack.update
_moto_execute_change_set = cloudformation_models.CloudFormationBackend.execute_change_set
_moto_parse_and_create = parsing.parse_and_create_resource
_moto_parse_and_update = parsing.parse_and_update_resource
_moto_clean_json = parsing.clean_json


class ResourceFailed(Exception):
    """A resource's handler failed: the resource, its type and CloudFormation's ResourceStatusReason."""

    def __init__(self, logical_id: str, resource_type: str, reason: str) -> None:
        super().__init__(reason)
        self.logical_id = logical_id
        self.resource_type = resource_type
        self.reason = reason


def handler_reason(error: BaseException) -> str:
    """The ResourceStatusReason of a registry resource whose handler met `error` from its service."""
    name = str(getattr(error, "error_type", "") or type(error).__name__)
    message = str(getattr(error, "message", "") or error)
    if "AlreadyExists" in name or "already exists" in message.lower():
        code = "AlreadyExists"
    elif "NotFound" in name:
        code = "NotFound"
    elif "Throttl" in name:
        code = "Throttling"
    elif any(part in name for part in ("Invalid", "Validation", "Malformed")):
        code = "InvalidRequest"
    else:
        code = "GeneralServiceException"
    token = uuid.uuid4()
    return f'Resource handler returned message: "{message}" (RequestToken: {token}, HandlerErrorCode: {code})'


def _naming_the_resource(parse: Callable[..., Any]) -> Callable[..., Any]:
    def parse_naming_failures(
        logical_id: str, resource_json: dict[str, Any], resources_map: Any, account_id: str, region_name: str
    ) -> Any:
        try:
            return parse(logical_id, resource_json, resources_map, account_id, region_name)
        except (ResourceFailed, CloudFormationError, UnformattedGetAttTemplateException):
            raise  # a dependency's failure, or a template error AWS answers at once
        except Exception as error:
            raise ResourceFailed(
                logical_id, str(resource_json.get("Type", "")), handler_reason(error)
            ) from error

    return parse_naming_failures


def _apply(self: cloudformation_models.ChangeSet) -> None:
    _moto_apply(self)
    stack = self.stack
    stack.template = self.template
    stack._parse_template()
    stack.parameters = self.parameters
    stack.description = stack.template_dict.get("Description")
    stack.output_map = stack._create_output_map()


# -- the stack role -----------------------------------------------------------------------------------
def _denial(
    stack: cloudformation_models.Stack,
    role_arn: str | None,
    template: Mapping[str, Any],
    parameters: Mapping[str, str],
    operations: Mapping[str, tuple[str, ...]] | None,
) -> Denial | None:
    context = current()
    if not role_arn or context is None or not context.iam.enabled:
        return None
    parameters = {key: str(value) for key, value in parameters.items()}
    denial = first_denial(template, stack.name, parameters, role_arn, role_policies(role_arn), operations)
    if denial is not None:
        context.iam.record(denial.denial)
    return denial


def _resource_event(
    stack: cloudformation_models.Stack,
    failed: Denial | ResourceFailed,
    status: str,
    reason: str | None = None,
) -> None:
    stack.events.append(
        cloudformation_models.Event(
            stack_id=stack.stack_id,
            stack_name=stack.name,
            logical_resource_id=failed.logical_id,
            physical_resource_id="",
            resource_type=failed.resource_type,
            resource_status=status,
            resource_status_reason=reason,
            resource_properties=None,
        )
    )


def _create_resources(self: cloudformation_models.Stack) -> None:
    denial = _denial(self, self.role_arn, self.template_dict, self.parameters, None)
    if denial is not None:
        _roll_back_create(self, denial)
        return
    try:
        _moto_create_resources(self)
    except ResourceFailed as failed:
        _roll_back_create(self, failed)


def _roll_back_create(stack: cloudformation_models.Stack, failed: Denial | ResourceFailed) -> None:
    """CloudFormation's events and statuses for a create whose resource failed; what was made is deleted."""
    stack.status = "CREATE_IN_PROGRESS"
    _resource_event(stack, failed, "CREATE_IN_PROGRESS")
    _resource_event(stack, failed, "CREATE_FAILED", failed.reason)
    stack._add_stack_event(
        "ROLLBACK_IN_PROGRESS",
        resource_status_reason=(
            f"The following resource(s) failed to create: [{failed.logical_id}]. Rollback requested by user."
        ),
    )
    try:
        stack.resource_map.delete()
    except Exception:  # a resource that cannot be deleted stays, as ROLLBACK_COMPLETE allows
        logger.warning("stack %s: a resource made before the failure could not be deleted", stack.name)
    _resource_event(stack, failed, "DELETE_COMPLETE")
    stack._add_stack_event("ROLLBACK_COMPLETE")
    stack.status = "ROLLBACK_COMPLETE"
    # Nothing is left to list or to make lazily on the next DescribeStackResources.
    stack.resource_map._resource_json_map = {}
    stack.output_map = OutputMap(stack.resource_map, {"Outputs": {}}, stack.stack_id)


def _update_operations(
    before: Mapping[str, Any], after: Mapping[str, Any], parameters_changed: bool
) -> dict[str, tuple[str, ...]]:
    """Which handler runs for each resource: create (new), update (changed), delete (removed)."""
    old = before.get("Resources") or {}
    new = after.get("Resources") or {}
    operations: dict[str, tuple[str, ...]] = {}
    for logical, spec in new.items():
        if logical not in old:
            operations[logical] = ("create",)
        elif parameters_changed or old[logical] != spec:
            operations[logical] = ("update",)
    return operations


def _update(
    self: cloudformation_models.Stack,
    template: str,
    role_arn: str | None = None,
    parameters: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    role = role_arn or self.role_arn  # UpdateStack without RoleARN uses the stack's role
    new_template = cloudformation_models.Stack.parse_template(template)
    new_parameters = parameters if parameters else self.parameters
    operations = _update_operations(self.template_dict, new_template, new_parameters != self.parameters)
    denial = _denial(self, role, new_template, new_parameters, operations)
    removed = set(self.template_dict.get("Resources") or {}) - set(new_template.get("Resources") or {})
    if denial is None and removed:  # a removed resource's delete handler runs with the role too
        deletes = {logical: ("delete",) for logical in removed}
        denial = _denial(self, role, self.template_dict, self.parameters, deletes)
    if denial is None:
        previous_template, previous_parameters = self.template, dict(self.parameters)
        try:
            _moto_update(self, template, role_arn, parameters=parameters, tags=tags)
        except ResourceFailed as failed:
            self.template = previous_template  # moto took the new template before it made the resources
            self._parse_template()
            _roll_back_update(self, failed, _verb(self, failed), previous_template, previous_parameters)
        return
    new = denial.logical_id not in (self.template_dict.get("Resources") or {})
    verb = "create" if new else "delete" if denial.logical_id in removed else "update"
    self._add_stack_event("UPDATE_IN_PROGRESS", resource_status_reason="User Initiated")
    _roll_back_update(self, denial, verb, None, None)


def _verb(stack: cloudformation_models.Stack, failed: ResourceFailed) -> str:
    """The failed operation: create for a resource the stack's (previous) template lacks, else update."""
    return "update" if failed.logical_id in (stack.template_dict.get("Resources") or {}) else "create"


def _roll_back_update(
    stack: cloudformation_models.Stack,
    failed: Denial | ResourceFailed,
    verb: str,
    template: Any,
    parameters: dict[str, Any] | None,
) -> None:
    """CloudFormation's events and statuses for an update whose resource failed. With `template`, moto
    changed resources before the failure: the previous template and parameters are applied again."""
    _resource_event(stack, failed, f"{verb.upper()}_IN_PROGRESS")
    _resource_event(stack, failed, f"{verb.upper()}_FAILED", failed.reason)
    stack._add_stack_event(
        "UPDATE_ROLLBACK_IN_PROGRESS",
        resource_status_reason=f"The following resource(s) failed to {verb}: [{failed.logical_id}].",
    )
    if template is not None:
        previous = cloudformation_models.Stack.parse_template(template)
        resources = stack.resource_map
        # What the stack holds now: a resource the failed update never made has nothing to undo (moto
        # warns of each), one it deleted is made again from the previous template.
        made = resources._parsed_resources
        resources._resource_json_map = {
            name: spec for name, spec in resources._resource_json_map.items() if name in made
        }
        try:
            resources.update(previous, parameters)
        except Exception as error:  # AWS's answer: the rollback failed, the stack says why
            reason = error.reason if isinstance(error, ResourceFailed) else str(error)
            stack._add_stack_event("UPDATE_ROLLBACK_FAILED", resource_status_reason=reason)
            stack.status = "UPDATE_ROLLBACK_FAILED"
            return
        stack.parameters = parameters or stack.parameters
        stack.output_map = stack._create_output_map()
    stack._add_stack_event("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
    stack._add_stack_event("UPDATE_ROLLBACK_COMPLETE")
    stack.status = "UPDATE_ROLLBACK_COMPLETE"


def _execute_change_set(
    self: cloudformation_models.CloudFormationBackend, change_set_name: str, stack_name: str | None = None
) -> None:
    """moto's ExecuteChangeSet, with a resource's failure rolled back as on AWS (the request succeeds)."""
    change_set = self.change_sets.get(change_set_name) or next(
        (cs for cs in self.change_sets.values() if cs.change_set_name == change_set_name), None
    )
    if change_set is None:
        _moto_execute_change_set(self, change_set_name, stack_name)  # moto's own error
        return
    stack = self.stacks[change_set.stack_id]
    previous_template, previous_parameters = stack.template, dict(stack.parameters)
    try:
        _moto_execute_change_set(self, change_set_name, stack_name)
    except ResourceFailed as failed:
        change_set.execution_status = "EXECUTE_FAILED"
        if change_set.change_set_type == "CREATE":
            _roll_back_create(stack, failed)
            return
        _roll_back_update(stack, failed, _verb(stack, failed), previous_template, previous_parameters)


def _clean_json(resource_json: Any, resources_map: Any) -> Any:
    substitution = resource_json.get("Fn::Sub") if isinstance(resource_json, dict) else None
    if isinstance(substitution, list) and len(substitution) == 2 and isinstance(substitution[1], dict):
        text, variables = substitution
        for name, value in variables.items():
            text = str(text).replace("${" + str(name) + "}", str(_moto_clean_json(value, resources_map)))
        resource_json = {**resource_json, "Fn::Sub": text}
    return _moto_clean_json(resource_json, resources_map)


def install() -> None:
    if not callable(getattr(parsing, "clean_json", None)):
        raise RuntimeError("moto moved: cloudformation.parsing.clean_json is gone; port harness/seams")
    parsing.clean_json = _clean_json
    cloudformation_models.ChangeSet.apply = _apply  # type: ignore[method-assign]
    cloudformation_models.Stack.create_resources = _create_resources  # type: ignore[method-assign]
    cloudformation_models.Stack.update = _update  # type: ignore[method-assign]
    cloudformation_models.CloudFormationBackend.execute_change_set = _execute_change_set  # type: ignore[method-assign]
    parsing.parse_and_create_resource = _naming_the_resource(_moto_parse_and_create)
    parsing.parse_and_update_resource = _naming_the_resource(_moto_parse_and_update)
