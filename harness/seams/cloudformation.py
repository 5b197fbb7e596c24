"""Seam: a stack deployed through a change set shows the template, parameters and outputs it got.

Why: `mlops deploy` creates and updates stacks through change sets, as on AWS. moto 5.2.5's
`ExecuteChangeSet` creates or updates the resources (`ChangeSet.apply`) but leaves the stack's parsed
template, parameters and outputs as they were when the change set was *created* (for a CREATE: an
empty template). DescribeStacks then shows no outputs, and the next change set is compared with stale
parameters. AWS shows the executed template's.

How: `ChangeSet.apply` is wrapped: after moto has applied the resources, the stack takes the change
set's template and parameters, re-parses the template and rebuilds its outputs.
"""

from __future__ import annotations

from moto.cloudformation import models as cloudformation_models

_moto_apply = cloudformation_models.ChangeSet.apply


def _apply(self: cloudformation_models.ChangeSet) -> None:
    _moto_apply(self)
    stack = self.stack
    stack.template = self.template
    stack._parse_template()
    stack.parameters = self.parameters
    stack.description = stack.template_dict.get("Description")
    stack.output_map = stack._create_output_map()


def install() -> None:
    cloudformation_models.ChangeSet.apply = _apply  # type: ignore[method-assign]
