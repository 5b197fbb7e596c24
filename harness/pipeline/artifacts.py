"""The artifact store: zip files on disk that stand for the pipeline's S3 artifact bucket.

Every artifact an action produces is a zip file kept under the store's root and, when the store has an
S3 client, uploaded to the pipeline's artifact bucket under the key CodePipeline uses
(`<pipeline name, 20 chars>/<artifact name, 10 chars>/<7 chars>`), so that Lambda actions read their
input artifacts from S3 as they do on AWS. Zips are written deterministically (sorted entries, fixed
timestamps, fixed permissions): the same tree gives the same bytes.

The store's S3 client is the pipeline's role's (CodePipeline reads and writes artifacts with its service
role: "Manage the CodePipeline service role"); a refused read or write raises `ArtifactAccessDenied`
with CodePipeline's message for it ("Insufficient permissions ..."; AWS re:Post knowledge center,
"How do I resolve Access Denied errors or permission issues in CodePipeline?").
"""

from __future__ import annotations

import hashlib
import shutil
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# 1980-01-01, the earliest time a zip entry can carry: every entry gets it, for reproducible bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class ArtifactRef:
    """One stored artifact: where it is on disk and in the artifact bucket."""

    name: str
    path: Path
    bucket: str
    key: str
    revision: str | None = None

    def s3_location(self) -> dict[str, Any]:
        """The artifact's `location` as a CodePipeline job event shows it."""
        return {"type": "S3", "s3Location": {"bucketName": self.bucket, "objectKey": self.key}}


def zip_tree(root: Path, destination: Path, files: Iterable[Path] | None = None) -> Path:
    """Zips `files` (default: every file under `root`) with paths relative to `root`, deterministically."""
    chosen = sorted(files) if files is not None else sorted(p for p in root.rglob("*") if p.is_file())
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in chosen:
            relative = path.relative_to(root).as_posix()
            info = zipfile.ZipInfo(relative, date_time=_ZIP_EPOCH)
            executable = path.stat().st_mode & stat.S_IXUSR
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return destination


def unzip(archive: Path, destination: Path) -> Path:
    """Unpacks a zip artifact, keeping the executable bit (zipfile drops it)."""
    destination.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as opened:
        for info in opened.infolist():
            target = (destination / info.filename).resolve()
            if not target.is_relative_to(destination.resolve()):
                raise ValueError(f"{archive}: entry {info.filename!r} escapes the destination")
            opened.extract(info, destination)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                target.chmod(mode)
    return destination


class ArtifactAccessDenied(Exception):
    """The pipeline's role may not read or write the artifact bucket; the message is CodePipeline's."""


def _denied(error: Exception, bucket: str) -> ArtifactAccessDenied | None:
    response = getattr(error, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    if code not in ("AccessDenied", "AccessDeniedException"):
        return None
    message = response.get("Error", {}).get("Message", "Access Denied") if isinstance(response, dict) else ""
    return ArtifactAccessDenied(
        "Insufficient permissions: The service role or action role doesn't have the permissions required "
        f"to access the Amazon S3 bucket named {bucket}. Update the IAM role permissions, and then try "
        f"again. Error: Amazon S3:AccessDenied:{message}"
    )


class ArtifactStore:
    """Artifacts of pipeline executions, under `root/<execution id>/<artifact name>.zip`."""

    def __init__(self, root: Path, bucket: str, pipeline_name: str, s3: Any | None = None) -> None:
        self.root = root
        self.bucket = bucket
        self.pipeline_name = pipeline_name
        self._s3 = s3  # a boto3 S3 client (the emulator's), or None to keep artifacts on disk only

    def key_for(self, execution_id: str, artifact: str) -> str:
        suffix = hashlib.sha256(f"{execution_id}/{artifact}".encode()).hexdigest()[:7]
        return f"{self.pipeline_name[:20]}/{artifact[:10]}/{suffix}"

    def path_for(self, execution_id: str, artifact: str) -> Path:
        return self.root / execution_id / f"{artifact}.zip"

    def planned(self, execution_id: str, artifact: str) -> ArtifactRef:
        """Where an artifact that someone else writes (a Lambda action's output) will be."""
        path = self.path_for(execution_id, artifact)
        return ArtifactRef(artifact, path, self.bucket, self.key_for(execution_id, artifact))

    def download(self, ref: ArtifactRef, destination: Path) -> Path:
        """Fetches an artifact someone else wrote to the bucket."""
        if self._s3 is None:
            raise ValueError("this artifact store has no S3 client to download with")
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            body = self._s3.get_object(Bucket=ref.bucket, Key=ref.key)["Body"].read()
        except Exception as error:  # GetObject, not download_file: a HEAD's 403 carries no message
            denied = _denied(error, ref.bucket)
            if denied is not None:
                raise denied from error
            raise
        destination.write_bytes(body)
        return destination

    def put(
        self, execution_id: str, artifact: str, zip_path: Path, revision: str | None = None
    ) -> ArtifactRef:
        """Stores a zip produced by an action (copied into the store) and uploads it."""
        if not zipfile.is_zipfile(zip_path):
            raise ValueError(f"artifact {artifact!r}: {zip_path} is not a zip file")
        target = self.path_for(execution_id, artifact)
        target.parent.mkdir(parents=True, exist_ok=True)
        if zip_path.resolve() != target.resolve():
            shutil.copyfile(zip_path, target)
        ref = ArtifactRef(artifact, target, self.bucket, self.key_for(execution_id, artifact), revision)
        if self._s3 is not None:
            try:
                self._s3.put_object(Bucket=ref.bucket, Key=ref.key, Body=target.read_bytes())
            except Exception as error:
                denied = _denied(error, ref.bucket)
                if denied is not None:
                    raise denied from error
                raise
        return ref
