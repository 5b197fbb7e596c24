"""The image pull SageMaker makes with the execution role: ECR's authorization token and BatchGetImage.

SageMaker pulls a training or serving image from a private ECR repository with the execution role
(SageMaker developer guide, "How to use SageMaker execution roles": CreateTrainingJob and CreateModel
need `ecr:GetAuthorizationToken`, `ecr:BatchGetImage`, `ecr:GetDownloadUrlForLayer`,
`ecr:BatchCheckLayerAvailability` for a private image). The harness's runtimes take the image from the
Docker engine or a registered source tree, not from ECR, so this asks the emulator's ECR what a pull
asks first, as the role: a denial is what stops the job or the endpoint. moto 5.2.5's ECR has no
GetDownloadUrlForLayer/BatchCheckLayerAvailability to ask (the layers live in the local registry).

The repository is the URI's path (`<registry>/<repository>@sha256:...` or `:<tag>`), whatever the
registry host: locally the image's registry is the local registry that stands for ECR. A repository
the emulator's ECR does not hold is not an ECR image (a public one): nothing is asked. An image the
repository does not list is left to the runtime (the process runtime's images are never pushed to ECR).
"""

from __future__ import annotations

from typing import Any

from harness.service_roles import is_access_denied


class ImagePullDenied(Exception):
    """The role may not pull the image: `action` (e.g. BatchGetImage) was denied; `detail` is ECR's answer."""

    def __init__(self, action: str, image_uri: str, detail: str) -> None:
        super().__init__(detail)
        self.action = action
        self.image_uri = image_uri
        self.detail = detail

    def reason(self, role_arn: str) -> str:
        """SageMaker's FailureReason for it (seen on endpoints: aws/sagemaker-python-sdk#2002)."""
        image = self.image_uri
        return f"The role '{role_arn}' does not have {self.action} permission for the image: '{image}'."


def repository_and_id(image_uri: str) -> tuple[str, dict[str, str]] | None:
    """(repository, ECR imageId) of an image URI, or None when it names no registry."""
    base, _, digest = image_uri.partition("@")
    if "/" not in base:
        return None
    registry, _, rest = base.partition("/")
    if "." not in registry and ":" not in registry and registry != "localhost":
        return None  # a Docker Hub name ("library/python"): not a registry of ours
    tag = ""
    if ":" in rest.rsplit("/", 1)[-1]:
        rest, _, tag = rest.rpartition(":")
    if digest:
        return rest, {"imageDigest": digest}
    return rest, {"imageTag": tag or "latest"}


def check_image_pull(ecr: Any, image_uri: str) -> None:
    """Asks ECR as the role would for a pull; raises ImagePullDenied when the role is refused."""
    parsed = repository_and_id(image_uri)
    if parsed is None:
        return
    repository, image_id = parsed
    try:
        ecr.get_authorization_token()
    except Exception as error:
        if is_access_denied(error):
            raise ImagePullDenied("GetAuthorizationToken", image_uri, str(error)) from error
        raise
    try:
        ecr.batch_get_image(repositoryName=repository, imageIds=[image_id])
    except Exception as error:
        if is_access_denied(error):
            raise ImagePullDenied("BatchGetImage", image_uri, str(error)) from error
        code = getattr(error, "response", {}).get("Error", {}).get("Code")
        if code == "RepositoryNotFoundException":
            return
        raise
