"""Seam: ECR's PutImage records the digest real ECR gives an image (sha256 of its manifest bytes).

Why: the Build stage pushes an image to the local registry and records its manifest in the emulator's
ECR (`harness.pipeline.image_registry.record_in_ecr`); the image URI the training job runs is
`<repository>@sha256:<hex of the manifest>`, as a registry and ECR name it. moto 5.2.5's
`ecr.models.Image` instead derives `imageDigest` from the layer digests (or a random number), so
`describe_images` would show a digest nothing else knows. This seam wraps
`ECRBackend.put_image`: when the caller gives no `imageDigest`, the digest is computed from the
manifest exactly as pushed; when it gives one that does not match, the call fails with
InvalidParameterException (AWS's answer to a digest that does not match the manifest).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

_ORIGINAL_ATTRIBUTE = "_harness_original_put_image"


def manifest_digest(manifest: str) -> str:
    """The content digest of an image manifest: `sha256:<hex>` of its UTF-8 bytes."""
    return "sha256:" + hashlib.sha256(manifest.encode("utf-8")).hexdigest()


def _put_image_with_manifest_digest(original: Callable[..., Any]) -> Callable[..., Any]:
    from moto.ecr.exceptions import InvalidParameterException

    def put_image(
        self: Any,
        repository_name: str,
        image_manifest: str,
        image_tag: str,
        image_manifest_mediatype: str | None = None,
        digest: str | None = None,
    ) -> Any:
        computed = manifest_digest(image_manifest)
        if digest and digest != computed:
            raise InvalidParameterException(
                f"Invalid parameter at 'imageDigest': {digest} does not match the manifest's "
                f"digest {computed}"
            )
        return original(self, repository_name, image_manifest, image_tag, image_manifest_mediatype, computed)

    setattr(put_image, _ORIGINAL_ATTRIBUTE, original)
    return put_image


def install() -> None:
    import inspect

    from moto.ecr.models import ECRBackend, Image

    current = ECRBackend.put_image
    if hasattr(current, _ORIGINAL_ATTRIBUTE):
        return
    expected = ["self", "repository_name", "image_manifest", "image_tag", "image_manifest_mediatype"]
    parameters = list(inspect.signature(current).parameters)
    if parameters != [*expected, "digest"] or "digest" not in inspect.signature(Image.__init__).parameters:
        raise RuntimeError(
            "moto moved: ECRBackend.put_image(...) or ecr.models.Image(digest=...) changed; "
            "port harness/seams/ecr.py"
        )
    ECRBackend.put_image = _put_image_with_manifest_digest(current)  # type: ignore[method-assign]
