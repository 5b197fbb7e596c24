"""Seam: EventBridge rules deliver to Lambda functions and Step Functions state machines.

Why: moto 5.2.5's `events.models.Rule.send_to_targets` matches the event pattern (moto's own matcher,
kept: it handles prefix/anything-but/numeric/exists/wildcard) but delivers only to logs, SQS, archives,
buses and HTTP destinations; a Lambda or state machine target raises NotImplementedError, so PutEvents
answers 500 and an S3 "Object Created" event (bucket with EventBridge notifications on) reaches
nothing. This seam delivers those two target kinds as AWS does:
- the target's input: the whole event, or `Input` (constant JSON), `InputPath` or `InputTransformer`
  (InputPathsMap + InputTemplate, with AWS's quoting rule: a placeholder inside a JSON string inserts
  the raw text, outside it inserts JSON);
- Lambda: an asynchronous invoke (InvocationType Event), through the Lambda seam's real runtime;
- state machine: StartExecution with a fresh execution name and the input;
- CodePipeline pipeline: StartPipelineExecution of the pipeline the target's ARN names, made as
  EventBridge makes it, with the target's `RoleArn` (CodePipeline user guide, "CodeCommit source
  actions and EventBridge": the rule's role must allow codepipeline:StartPipelineExecution), and the
  execution's trigger `CloudWatchEvent` with the rule's ARN as its detail (user guide, "Start a
  pipeline execution in CodePipeline": change detection on a code push is that trigger type).
The event is normalised to what AWS sends (`time` as ISO 8601 text; moto's internal `ingestion-time`
dropped). A failed delivery is logged, never raised (PutEvents succeeds on AWS whatever a target does).
Other target kinds still go to moto's original code.

It also makes S3's direct Lambda notifications asynchronous (moto calls the function inside the
PutObject request; AWS invokes it after the object is stored, without blocking the writer), and makes
CloudFormation apply an `AWS::S3::Bucket`'s `NotificationConfiguration` (EventBridgeConfiguration and
LambdaConfigurations), which moto's S3 model ignores: without it a stack's data bucket sends nothing.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from deployer.iam_policy import Request
from harness.context import HarnessContext, current
from harness.iam.credentials import Credentials
from harness.iam.principals import resolve
from harness.seams.codepipeline import start_pipeline_as

logger = logging.getLogger(__name__)

_HARNESS_TARGET_SERVICES = ("lambda", "states", "codepipeline")
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


class InputTransformError(ValueError):
    """A target's input could not be built from the event."""


# -- the target's input -------------------------------------------------------------------------------
def json_path(event: Any, path: str) -> Any:
    """Resolves EventBridge's simple JSONPath (`$`, `$.a.b`, `$.a[0].b`); None when absent."""
    if not path.startswith("$"):
        raise InputTransformError(f"a JSON path starts with '$', not {path!r}")
    node = event
    for part in re.findall(r"\.([^.\[\]]+)|\[(\d+)\]", path[1:]):
        name, index = part
        if name:
            if not isinstance(node, Mapping) or name not in node:
                return None
            node = node[name]
        else:
            if not isinstance(node, list) or int(index) >= len(node):
                return None
            node = node[int(index)]
    return node


def render_template(template: str, values: Mapping[str, Any]) -> str:
    """Fills `<name>` placeholders: raw text inside a JSON string, JSON outside (AWS's rule).

    A placeholder that the paths map does not name is left as written.
    """
    out: list[str] = []
    in_string = False
    escaped = False
    position = 0
    while position < len(template):
        char = template[position]
        match = _PLACEHOLDER.match(template, position) if char == "<" else None
        if match and match.group(1) in values:
            value = values[match.group(1)]
            if in_string:
                text = value if isinstance(value, str) else json.dumps(value)
                out.append(json.dumps(text)[1:-1])
            else:
                out.append(json.dumps(value))
            position = match.end()
            continue
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        out.append(char)
        position += 1
    return "".join(out)


def target_input(target: Mapping[str, Any], event: Mapping[str, Any]) -> Any:
    """The payload a target receives for `event` (a JSON value)."""
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        return json_path(event, str(target["InputPath"]))
    transformer = target.get("InputTransformer")
    if transformer:
        paths = transformer.get("InputPathsMap") or {}
        values: dict[str, Any] = {name: json_path(event, str(path)) for name, path in paths.items()}
        values["aws.events.event"] = dict(event)
        values["aws.events.event.json"] = dict(event)
        text = render_template(str(transformer["InputTemplate"]), values)
        try:
            return json.loads(text)
        except ValueError:
            return text  # a text template ("<key> arrived") is delivered as a string
    return dict(event)


def aws_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """moto's internal event message as AWS delivers it."""
    shaped = copy.deepcopy(dict(event))
    shaped.pop("ingestion-time", None)
    stamp = shaped.get("time")
    if isinstance(stamp, int | float):
        moment = datetime.datetime.fromtimestamp(float(stamp), tz=datetime.UTC)
        shaped["time"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return shaped


# -- delivery -----------------------------------------------------------------------------------------
def _arn_parts(arn: str) -> tuple[str, str, str]:
    """(service, region, account) of an ARN."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn":
        raise InputTransformError(f"not an ARN: {arn!r}")
    return parts[2], parts[3], parts[4]


class TargetAccessDenied(PermissionError):
    """The rule target's role may not make the call that delivers the event (AWS counts the delivery
    in the rule's FailedInvocations metric; the sender of the event learns nothing)."""


def _target_session(context: HarnessContext, role_arn: str) -> Credentials:
    """The credentials EventBridge acts with for a target's `RoleArn` (EventBridge user guide, "Using IAM
    roles for targets": EventBridge assumes the role, which must trust events.amazonaws.com). The session
    name is the harness's choice: AWS documents none."""
    return context.iam.session(role_arn, "EventBridge", "events.amazonaws.com")


def _authorize_target(context: HarnessContext, target: Mapping[str, Any], action: str, resource: str) -> None:
    """Refuses a delivery that the target's role may not make (a target without a role: as moto does,
    the harness's own rights). Deliveries that go straight to a backend, not through the emulator's
    API, are checked here; the CodePipeline target's call goes through the API and its boundary."""
    role = target.get("RoleArn")
    if not role:
        return
    credentials = _target_session(context, str(role))
    denial = context.iam.authorize(
        resolve(credentials.access_key_id, credentials.session_token), [Request(action, resource)]
    )
    if denial is not None:
        raise TargetAccessDenied(denial.message)


def deliver(target: Mapping[str, Any], event: Mapping[str, Any], rule_arn: str = "") -> None:
    """Delivers one event to one Lambda, state machine or pipeline target (raises on failure)."""
    arn = str(target["Arn"])
    service, region, account = _arn_parts(arn)
    payload = json.dumps(target_input(target, aws_event(event)))
    if service == "lambda":
        from moto.awslambda.utils import get_backend as lambda_backend

        function = lambda_backend(account, region).get_function(arn)
        function.invoke(payload, {"X-Amz-Invocation-Type": "Event"}, {})
    elif service == "states":
        from moto.stepfunctions.responses import get_backend as states_backend

        context = current()
        if context is not None:
            _authorize_target(context, target, "states:StartExecution", arn)
        states_backend(account, region).start_execution(
            state_machine_arn=arn, name=str(uuid.uuid4()), execution_input=payload
        )
    elif service == "codepipeline":
        context = current()
        if context is None:
            raise InputTransformError("no embedded emulator runs: nothing can start the pipeline")
        trigger = {"triggerType": "CloudWatchEvent", "triggerDetail": rule_arn}
        role = target.get("RoleArn")
        credentials = _target_session(context, str(role)).as_boto3() if role else None
        start_pipeline_as(credentials, arn, trigger, context.endpoint_url)
    else:
        raise InputTransformError(
            f"the harness delivers to lambda, states and codepipeline targets, not {service}"
        )


def emit_service_event(event: Mapping[str, Any]) -> None:
    """Puts an event an AWS service sends (CodeCommit's "Repository State Change", in the shape
    harness.pipeline.source.codecommit_event gives) on the default bus of its account and region, as
    the service does: straight into moto's events backend, where the rules match it. (A customer's
    PutEvents may not use an `aws.` source; the service's own events are not PutEvents calls.)"""
    from moto.events.models import events_backends

    backend = events_backends[str(event["account"])][str(event["region"])]
    entries = backend.put_events(
        [
            {
                "Source": str(event["source"]),
                "DetailType": str(event["detail-type"]),
                "Detail": json.dumps(event["detail"]),
                "Resources": list(event.get("resources") or []),
                "EventBusName": "default",
            }
        ]
    )
    failed = [entry for entry in entries if entry.get("ErrorCode")]
    if failed:
        raise InputTransformError(f"the event bus refused the event: {failed[0]['ErrorMessage']}")


def _send_to_targets(original: Callable[..., None]) -> Callable[..., None]:
    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        if not self.event_pattern.matches_event(original_event):
            return
        ours = [t for t in list(self.targets) if _arn_parts(str(t["Arn"]))[0] in _HARNESS_TARGET_SERVICES]
        theirs = [t for t in list(self.targets) if t not in ours]
        for target in ours:
            try:
                deliver(target, original_event, str(getattr(self, "arn", "")))
            except Exception:
                logger.exception("rule %s: delivery to %s failed", self.name, target.get("Arn"))
        if theirs:
            # moto's own delivery, on a view of the rule that holds only the targets it supports.
            # (object.__new__ + __dict__, not copy.copy: moto's BaseModel.__new__ would track the view.)
            view = object.__new__(type(self))
            view.__dict__.update(self.__dict__)
            view.targets = theirs
            original(view, original_event, transform_input)

    send_to_targets.__wrapped__ = original  # type: ignore[attr-defined]
    return send_to_targets


def _async_s3_lambda(original: Callable[..., None]) -> Callable[..., None]:
    def invoke_awslambda(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
        threading.Thread(
            target=original,
            args=(account_id, event_body, fn_arn, region_name),
            name="s3-notification-lambda",
            daemon=True,
        ).start()

    invoke_awslambda.__wrapped__ = original  # type: ignore[attr-defined]
    return invoke_awslambda


def notification_configuration(properties: Mapping[str, Any]) -> dict[str, Any] | None:
    """A bucket's CloudFormation NotificationConfiguration in the shape moto's S3 backend stores."""
    raw = properties.get("NotificationConfiguration")
    if not raw:
        return None
    config: dict[str, Any] = {}
    bridge = raw.get("EventBridgeConfiguration") or {}
    if str(bridge.get("EventBridgeEnabled", False)).lower() == "true":
        config["EventBridgeConfiguration"] = {}
    functions = []
    for entry in raw.get("LambdaConfigurations") or []:
        item: dict[str, Any] = {"CloudFunction": str(entry["Function"]), "Event": [str(entry["Event"])]}
        rules = ((entry.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []
        if rules:
            item["Filter"] = {
                "S3Key": {"FilterRule": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}
            }
        functions.append(item)
    if functions:
        config["CloudFunctionConfiguration"] = functions
    return config or None


def _apply_bucket_notifications(bucket: Any, cloudformation_json: Mapping[str, Any]) -> None:
    config = notification_configuration(cloudformation_json.get("Properties") or {})
    if config is not None:
        bucket.set_notification_configuration(config)


def _bucket_create(original: Any) -> Any:
    def create_from_cloudformation_json(
        cls: Any,
        /,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        bucket = original.__func__(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        _apply_bucket_notifications(bucket, cloudformation_json)
        return bucket

    create_from_cloudformation_json.__wrapped__ = original  # type: ignore[attr-defined]
    return classmethod(create_from_cloudformation_json)


def _bucket_update(original: Any) -> Any:
    def update_from_cloudformation_json(
        cls: Any,
        /,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        bucket = original.__func__(
            cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
        )
        _apply_bucket_notifications(bucket, cloudformation_json)
        return bucket

    update_from_cloudformation_json.__wrapped__ = original  # type: ignore[attr-defined]
    return classmethod(update_from_cloudformation_json)


def install() -> None:
    from moto.events import models as events_models
    from moto.s3 import models as s3_models
    from moto.s3 import notifications as s3_notifications

    rule_send = getattr(events_models.Rule, "send_to_targets", None)
    s3_invoke = getattr(s3_notifications, "_invoke_awslambda", None)
    if not callable(rule_send) or not callable(s3_invoke):
        raise RuntimeError(
            "moto moved: events.models.Rule.send_to_targets or s3.notifications._invoke_awslambda is "
            "gone; port harness/seams/events.py"
        )
    if not hasattr(rule_send, "__wrapped__"):
        events_models.Rule.send_to_targets = _send_to_targets(rule_send)  # type: ignore[method-assign]
    if not hasattr(s3_invoke, "__wrapped__"):
        s3_notifications._invoke_awslambda = _async_s3_lambda(s3_invoke)
    bucket = s3_models.FakeBucket
    create = bucket.__dict__.get("create_from_cloudformation_json")
    update = bucket.__dict__.get("update_from_cloudformation_json")
    if not isinstance(create, classmethod) or not isinstance(update, classmethod):
        raise RuntimeError(
            "moto moved: FakeBucket's CloudFormation classmethods are gone; port harness/seams/events.py"
        )
    if not hasattr(create.__func__, "__wrapped__"):
        bucket.create_from_cloudformation_json = _bucket_create(create)  # type: ignore[method-assign,assignment]
        bucket.update_from_cloudformation_json = _bucket_update(update)  # type: ignore[method-assign,assignment]
