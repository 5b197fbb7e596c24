"""Rendering the templates without AWS: deployer.compile, and the buildspec's build record contract."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer import compile as compiler
from deployer.lambdas.contracts import BuildRecord

REPO = Path(__file__).resolve().parents[2]


def test_the_platform_template_carries_the_validated_state_machine() -> None:
    template = compiler.render_platform()
    definition = template["Resources"]["TrainingStateMachine"]["Properties"]["DefinitionString"]
    text, variables = definition["Fn::Sub"]
    assert json.loads(text) == json.loads(compiler.ASL_PATH.read_text(encoding="utf-8"))
    assert set(re.findall(r"\$\{([^}]+)\}", text)) == {
        "SageMakerExecutionRole.Arn",
        "TrainingInstanceType",
        "HostingInstanceType",
        "HostingDevice",
        "HostingAmiVersion",
    }
    assert set(variables) == {"HostingDevice", "HostingAmiVersion"}


def test_gpu_hosting_types_serve_on_the_gpu_with_a_driver_that_runs_the_images_torch() -> None:
    """HostsOnGpu names exactly the GPU types HostingInstanceType allows; on them the container gets
    BYOC_INFERENCE_DEVICE=cuda and the variant the hosting AMI with NVIDIA driver 580 / CUDA 13.0
    (botocore's ProductionVariantInferenceAmiVersion documentation), which torch 2.13.0's CUDA build
    needs (its wheel requires cuda-toolkit 13.0.3); the default AMIs of ml.g4dn/ml.g5 have driver 470
    (SageMaker: "Best practices to minimize interruptions during GPU driver upgrades")."""
    from harness.aws_errors import service_model

    template = compiler.render_platform()
    allowed = template["Parameters"]["HostingInstanceType"]["AllowedValues"]
    gpu_types = {clause["Fn::Equals"][1] for clause in template["Conditions"]["HostsOnGpu"]["Fn::Or"]}
    assert gpu_types == {kind for kind in allowed if kind.split(".")[1][0] in "gp"}
    assert template["Parameters"]["HostingInstanceType"]["Default"] not in gpu_types
    _, variables = template["Resources"]["TrainingStateMachine"]["Properties"]["DefinitionString"]["Fn::Sub"]
    assert variables["HostingDevice"] == {"Fn::If": ["HostsOnGpu", "cuda", "cpu"]}
    ami = variables["HostingAmiVersion"]["Fn::If"][1]
    model = service_model("sagemaker")
    assert ami in model.shape_for("ProductionVariantInferenceAmiVersion").enum
    documentation = model.shape_for("ProductionVariant").members["InferenceAmiVersion"].documentation
    assert re.search(
        ami + r".{0,200}NVIDIA driver version: 580.{0,80}CUDA version: 13\.0", documentation, re.S
    )
    from byoc.environment import CUDA_INFERENCE_AMI

    assert ami == CUDA_INFERENCE_AMI  # the container's error names the same AMI
    states = json.loads(compiler.ASL_PATH.read_text(encoding="utf-8"))["States"]
    gpu_variant = states["CreateGpuEndpointConfig"]["Parameters"]["ProductionVariants"][0]
    cpu_variant = states["CreateEndpointConfig"]["Parameters"]["ProductionVariants"][0]
    assert gpu_variant.pop("InferenceAmiVersion.$") == "$.Hosting.AmiVersion"
    assert gpu_variant == cpu_variant  # the one difference
    environment = states["CreateModel"]["Parameters"]["PrimaryContainer"]["Environment"]
    assert environment == {"BYOC_INFERENCE_DEVICE.$": "$.Hosting.Device"}


def test_an_asl_placeholder_the_template_does_not_declare_is_rejected() -> None:
    text = compiler.ASL_PATH.read_text(encoding="utf-8").replace("${HostingInstanceType}", "${HostingType}")
    with pytest.raises(compiler.CompileError, match="HostingType"):
        compiler.render_platform(text)


def test_a_broken_asl_is_rejected_when_rendering() -> None:
    definition = json.loads(compiler.ASL_PATH.read_text(encoding="utf-8"))
    definition["States"]["CreateModel"]["Next"] = "Nowhere"
    with pytest.raises(ValueError, match="Nowhere"):
        compiler.render_platform(json.dumps(definition))


def test_data_and_artifact_buckets_are_versioned_encrypted_and_private() -> None:
    resources = compiler.render_platform()["Resources"]
    for name in ("DataBucket", "ArtifactBucket"):
        properties = resources[name]["Properties"]
        assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
        assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}
        assert resources[name]["DeletionPolicy"] == "Retain"
    assert resources["DataBucket"]["Properties"]["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}
    }


def test_the_image_repository_scans_on_push_and_expires_old_images() -> None:
    properties = compiler.render_platform()["Resources"]["ImageRepository"]["Properties"]
    assert properties["ImageScanningConfiguration"] == {"ScanOnPush": True}
    rules = json.loads(properties["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
    assert rules[0]["action"] == {"type": "expire"}


def test_training_defaults_to_a_gpu_and_hosting_to_a_cpu() -> None:
    parameters = compiler.render_platform()["Parameters"]
    assert parameters["TrainingInstanceType"]["Default"] == "ml.g5.xlarge"
    hosting = parameters["HostingInstanceType"]
    assert hosting["Default"] == "ml.m5.xlarge"  # onnxruntime on CPU (README: hosting hardware)
    assert hosting["Default"] in hosting["AllowedValues"] and "ml.m5.large" in hosting["AllowedValues"]


def test_the_pipeline_runs_its_stages_in_order() -> None:
    pipeline = compiler.render_platform()["Resources"]["Pipeline"]["Properties"]
    assert [stage["Name"] for stage in pipeline["Stages"]] == [
        "Source",
        "Build",
        "Train",
        "Approve",
        "Register",
        "PublishApi",
    ]


def test_the_api_method_requires_a_key_and_the_lambda_may_be_invoked_by_api_gateway() -> None:
    resources = compiler.render_api()["Resources"]
    assert resources["PredictMethod"]["Properties"]["ApiKeyRequired"] is True
    assert resources["InvokePermission"]["Properties"]["Principal"] == "apigateway.amazonaws.com"
    assert resources["UsagePlanKey"]["Properties"]["KeyId"] == {"Ref": "ApiKey"}
    assert "Throttle" in resources["UsagePlan"]["Properties"]


def _statements(node: object) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if "Effect" in node and "Action" in node:
            yield node
        for value in node.values():
            yield from _statements(value)
    elif isinstance(node, list):
        for value in node:
            yield from _statements(value)


def test_no_policy_allows_every_action_of_a_service() -> None:
    allowed = []
    for template in (compiler.render_platform(), compiler.render_api(), compiler.render_assets()):
        for statement in _statements(template["Resources"]):
            if statement["Effect"] != "Allow":
                continue
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            allowed.extend(actions)
    assert len(allowed) > 40
    assert [action for action in allowed if action == "*" or action.endswith(":*")] == []


def test_parameters_parse_as_key_value() -> None:
    assert compiler.parse_parameters(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(compiler.CompileError, match="not KEY=VALUE"):
        compiler.parse_parameters(["novalue"])
    with pytest.raises(compiler.CompileError, match="given twice"):
        compiler.parse_parameters(["A=1", "A=2"])


def test_platform_parameters_reject_unknown_and_managed_keys() -> None:
    template = compiler.render_platform()
    managed = {name: f"value-{name}" for name in compiler.MANAGED_PARAMETERS}
    rendered = compiler.platform_parameters(template, "p1", managed, {"QualityThreshold": "0.9"})
    assert rendered["QualityThreshold"] == "0.9"
    assert rendered["ApiStackName"] == "p1-api"
    with pytest.raises(compiler.CompileError, match="unknown parameter"):
        compiler.platform_parameters(template, "p1", managed, {"QualityTreshold": "0.9"})
    with pytest.raises(compiler.CompileError, match="set by the deployer"):
        compiler.platform_parameters(template, "p1", managed, {"AssetsBucket": "mine"})


def test_a_bad_stack_prefix_is_rejected() -> None:
    with pytest.raises(compiler.CompileError, match="stack prefix"):
        compiler.stack_names("9 bad")


@pytest.mark.slow
def test_the_rendered_templates_pass_cfn_lint(tmp_path: Path) -> None:
    """cfn-lint on what is deployed (the state machine inlined), not only on the files as stored."""
    cfn_lint = shutil.which("cfn-lint", path=str(Path(sys.executable).parent))
    assert cfn_lint is not None, "cfn-lint is a dev dependency"
    paths = []
    for name, template in {
        "platform": compiler.render_platform(),
        "api": compiler.render_api(),
        "assets": compiler.render_assets(),
    }.items():
        path = tmp_path / f"{name}.json"
        path.write_text(compiler.template_body(template, pretty=True), encoding="utf-8")
        paths.append(str(path))
    result = subprocess.run([cfn_lint, *paths], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_buildspec_writes_the_build_record_start_training_reads(tmp_path: Path) -> None:
    """Run the buildspec's record-writing command for real, in a copy of the source layout."""
    buildspec = yaml.safe_load((REPO / "deployer" / "buildspec.yml").read_text(encoding="utf-8"))
    command = next(c for c in buildspec["phases"]["post_build"]["commands"] if "build.json" in c)
    (tmp_path / "deployer").mkdir()
    shutil.copy(REPO / "deployer" / "training.json", tmp_path / "deployer" / "training.json")
    digest = "sha256:" + "ab" * 32
    env = {
        **os.environ,
        "IMAGE_URI": f"127.0.0.1:5000/gptneo-intent@{digest}",
        "IMAGE_DIGEST": digest,
        "COMMIT_ID": "0123456789abcdef0123456789abcdef01234567",
    }
    subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, check=True, timeout=60)
    record = BuildRecord.from_json((tmp_path / "build.json").read_text(encoding="utf-8"))
    assert record.image_uri.endswith(digest)
    assert record.commit_id == env["COMMIT_ID"]
    assert set(record.hyperparameters) == {
        "model_preset",
        "epochs",
        "max_steps",
        "batch_size",
        "learning_rate",
        "max_length",
        "seed",
        "eval_fraction",
    }
    assert "build.json" in buildspec["artifacts"]["files"]
