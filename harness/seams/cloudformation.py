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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moto.cloudformation import models as cloudformation_models
from moto.cloudformation.parsing import OutputMap

from harness.context import current
from harness.iam.principals import role_policies
from harness.stack_role import Denial, first_denial

_moto_apply = cloudformation_models.ChangeSet.apply
_moto_create_resources = cloudformation_models.Stack.create_resources
_moto_update = cloudformation_models.Stack.update


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
    stack: cloudformation_models.Stack, denial: Denial, status: str, reason: str | None = None
) -> None:
    stack.events.append(
        cloudformation_models.Event(
            stack_id=stack.stack_id,
            stack_name=stack.name,
            logical_resource_id=denial.logical_id,
            physical_resource_id="",
            resource_type=denial.resource_type,
            resource_status=status,
            resource_status_reason=reason,
            resource_properties=None,
        )
    )


def _create_resources(self: cloudformation_models.Stack) -> None:
    denial = _denial(self, self.role_arn, self.template_dict, self.parameters, None)
    if denial is None:
        _moto_create_resources(self)
        return
    self.status = "CREATE_IN_PROGRESS"
    _resource_event(self, denial, "CREATE_IN_PROGRESS")
    _resource_event(self, denial, "CREATE_FAILED", denial.reason)
    self._add_stack_event(
        "ROLLBACK_IN_PROGRESS",
        resource_status_reason=(
            f"The following resource(s) failed to create: [{denial.logical_id}]. Rollback requested by user."
        ),
    )
    _resource_event(self, denial, "DELETE_COMPLETE")
    self._add_stack_event("ROLLBACK_COMPLETE")
    self.status = "ROLLBACK_COMPLETE"
    self.output_map = OutputMap(self.resource_map, {"Outputs": {}}, self.stack_id)


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
        _moto_update(self, template, role_arn, parameters=parameters, tags=tags)
        return
    new = denial.logical_id not in (self.template_dict.get("Resources") or {})
    verb = "create" if new else "delete" if denial.logical_id in removed else "update"
    self._add_stack_event("UPDATE_IN_PROGRESS", resource_status_reason="User Initiated")
    _resource_event(self, denial, f"{verb.upper()}_IN_PROGRESS")
    _resource_event(self, denial, f"{verb.upper()}_FAILED", denial.reason)
    self._add_stack_event(
        "UPDATE_ROLLBACK_IN_PROGRESS",
        resource_status_reason=f"The following resource(s) failed to {verb}: [{denial.logical_id}].",
    )
    self._add_stack_event("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
    self._add_stack_event("UPDATE_ROLLBACK_COMPLETE")
    self.status = "UPDATE_ROLLBACK_COMPLETE"


def install() -> None:
    cloudformation_models.ChangeSet.apply = _apply  # type: ignore[method-assign]
    cloudformation_models.Stack.create_resources = _create_resources  # type: ignore[method-assign]
    cloudformation_models.Stack.update = _update  # type: ignore[method-assign]
