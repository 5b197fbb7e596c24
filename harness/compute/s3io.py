"""Moving files between the emulator's S3 and local directories, as SageMaker's agents do.

A channel's `S3Prefix` is downloaded object by object into the channel's directory, keeping each
object's path below the prefix; a model directory goes up as one `model.tar.gz` with its files at
the archive's root; a `model.tar.gz` comes down and is unpacked with tarfile's `data` filter (no
absolute paths, no links out of the target).

Objects are read with GetObject, not boto3's `download_file` (which asks HeadObject first): a HEAD
answer has no body, so a denial would reach the job as a bare "403 Forbidden", where SageMaker's reason
names the role and the action.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not uri.startswith("s3://"):
            raise ValueError(f"expected an s3:// URI, got {uri!r}")
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"the S3 URI {uri!r} names no bucket")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def download_prefix(s3: Any, uri: S3Uri, target: Path) -> list[Path]:
    """Downloads every object under `uri` into `target`; returns the files written (none: empty prefix)."""
    written: list[Path] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=uri.bucket, Prefix=uri.key):
        for item in page.get("Contents", []):
            key: str = item["Key"]
            if key.endswith("/"):
                continue  # a "folder" placeholder object
            relative = key[len(uri.key) :].lstrip("/") or PurePosixPath(key).name
            parts = PurePosixPath(relative).parts
            if ".." in parts:
                raise ValueError(f"refusing to download {key!r}: its path leaves the channel directory")
            destination = target.joinpath(*parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            get_object_to(s3, uri.bucket, key, destination)
            written.append(destination)
    return written


_CHUNK = 1024 * 1024


def get_object_to(s3: Any, bucket: str, key: str, destination: Path) -> None:
    """Writes one object's bytes to `destination` (GetObject, streamed)."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        with destination.open("wb") as target:
            for chunk in iter(lambda: body.read(_CHUNK), b""):
                target.write(chunk)
    finally:
        body.close()


def pack_directory(source: Path, archive: Path) -> Path:
    """Writes `source`'s contents into a gzip tarball whose members sit at its root."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(source.rglob("*")):
            tar.add(path, arcname=path.relative_to(source).as_posix(), recursive=False)
    return archive


def upload_file(s3: Any, path: Path, uri: S3Uri) -> None:
    s3.upload_file(str(path), uri.bucket, uri.key)


def download_and_unpack(s3: Any, uri: S3Uri, scratch: Path, target: Path) -> None:
    """Downloads a model.tar.gz and unpacks it into `target` (created if missing)."""
    scratch.mkdir(parents=True, exist_ok=True)
    archive = scratch / "model.tar.gz"
    get_object_to(s3, uri.bucket, uri.key, archive)
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(target, filter="data")
    archive.unlink()
