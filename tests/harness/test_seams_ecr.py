"""The ECR seam: PutImage records the digest a registry gives the manifest, as ECR does."""

from __future__ import annotations

import hashlib
import inspect
import json

import pytest
from botocore.exceptions import ClientError

import harness.seams as harness_seams
from harness.emulator import EmbeddedEmulator
from harness.seams import ecr

# A Docker schema 2 manifest as a registry serves it (the exact bytes matter: they are what is hashed).
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1470,
            "digest": "sha256:" + "a" * 64,
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 977,
                "digest": "sha256:" + "b" * 64,
            }
        ],
    },
    indent=3,
)


def test_put_image_records_the_manifest_digest(emulator: EmbeddedEmulator) -> None:
    client = emulator.client("ecr")
    client.create_repository(repositoryName="digests")
    expected = "sha256:" + hashlib.sha256(MANIFEST.encode("utf-8")).hexdigest()
    put = client.put_image(repositoryName="digests", imageManifest=MANIFEST, imageTag="v1")
    assert put["image"]["imageId"]["imageDigest"] == expected
    described = client.describe_images(repositoryName="digests")["imageDetails"]
    assert [image["imageDigest"] for image in described] == [expected]
    # The digest form of the image URI finds it.
    found = client.batch_get_image(repositoryName="digests", imageIds=[{"imageDigest": expected}])
    assert found["images"][0]["imageManifest"] == MANIFEST


def test_put_image_rejects_a_digest_that_does_not_match(emulator: EmbeddedEmulator) -> None:
    client = emulator.client("ecr")
    client.create_repository(repositoryName="mismatch")
    with pytest.raises(ClientError) as raised:
        client.put_image(
            repositoryName="mismatch", imageManifest=MANIFEST, imageTag="v1", imageDigest="sha256:" + "0" * 64
        )
    assert raised.value.response["Error"]["Code"] == "InvalidParameterException"
    assert client.describe_images(repositoryName="mismatch")["imageDetails"] == []


def test_seam_is_installed_and_moto_still_derives_digests_from_layers() -> None:
    """Fails loudly when moto moves, or starts hashing the manifest itself (then drop the seam)."""
    harness_seams.install()
    from moto.ecr.models import ECRBackend, Image

    assert hasattr(ECRBackend.put_image, "_harness_original_put_image")
    source = inspect.getsource(Image._create_digest)
    assert "layer_digests" in source, "moto's Image no longer derives its digest from the layers"
    assert ecr.manifest_digest("{}") == "sha256:" + hashlib.sha256(b"{}").hexdigest()
